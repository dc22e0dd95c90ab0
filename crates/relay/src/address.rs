//! Client addresses as the per-address limits see them, and the HTTP listener's
//! connection counts.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::hub::Refused;

/// The unit every per-address limit counts by (connections, registrations, BOSH sessions,
/// the authentication back-off): an IPv4 address, or the /64 prefix of an IPv6 address,
/// since one host is usually given a whole /64 and can use any address in it. An
/// IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports for an
/// IPv4 client) counts as that IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressKey {
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 address.
    V6Prefix(u64),
}

impl AddressKey {
    /// The key `ip` counts under.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => Self::V6Prefix(u64::try_from(v6.to_bits() >> 64).unwrap_or(u64::MAX)),
        }
    }
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        Self::of(ip)
    }
}

/// Open connections per address ([`AddressKey`]) and in total, for the HTTP listener
/// (whose connections are not the hub's streams: a WebSocket is both, a BOSH session may
/// use several). A trusted proxy's connections count in the total only: they carry many
/// clients, whose own limits apply to the streams and sessions they open.
#[derive(Debug, Default)]
pub struct ConnectionCounts {
    per_address: HashMap<AddressKey, usize>,
    total: usize,
}

impl ConnectionCounts {
    /// Counts a new connection from `ip` (`proxy`: a trusted proxy), or refuses it when
    /// its address has `per_address` open or the listener `total`.
    pub fn admit(
        &mut self,
        ip: IpAddr,
        proxy: bool,
        per_address: usize,
        total: usize,
    ) -> Result<(), Refused> {
        if self.total >= total {
            return Err(Refused::Total);
        }
        if !proxy {
            let n = self.per_address.entry(AddressKey::of(ip)).or_default();
            if *n >= per_address {
                return Err(Refused::PerAddress);
            }
            *n += 1;
        }
        self.total += 1;
        Ok(())
    }

    /// A connection [`Self::admit`] counted has ended.
    pub fn release(&mut self, ip: IpAddr, proxy: bool) {
        self.total = self.total.saturating_sub(1);
        if !proxy {
            let key = AddressKey::of(ip);
            if let Some(n) = self.per_address.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_address.remove(&key);
                }
            }
        }
    }

    /// Open connections.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Addresses with open connections.
    pub fn addresses(&self) -> usize {
        self.per_address.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> AddressKey {
        AddressKey::of(s.parse().unwrap())
    }

    #[test]
    fn ipv6_groups_by_64_and_mapped_ipv4_is_ipv4() {
        // One /64: the same key, whatever the interface identifier.
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:abcd::9"));
        // The next /64, or another bit of the prefix: another key.
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:8002::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db9:1:2::1"));
        // IPv4: each address its own key; a mapped address is the IPv4 one.
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_eq!(
            key("::ffff:192.0.2.7"),
            AddressKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        // All of ::ffff:0:0/96 maps to IPv4, so it never shares the /64 key ::ffff:0:0 has.
        assert_ne!(key("::ffff:192.0.2.7"), key("::ffff:192.0.2.8"));
        assert_eq!(key("::1"), key("::2"), "::/64 is one prefix");
    }

    #[test]
    fn connections_are_counted_per_address_and_in_total() {
        let mut c = ConnectionCounts::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let a2: IpAddr = "2001:db8::2".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(c.admit(a, false, 2, 4), Ok(()));
        assert_eq!(c.admit(a2, false, 2, 4), Ok(()));
        assert_eq!(c.admit(a, false, 2, 4), Err(Refused::PerAddress), "one /64");
        assert_eq!(c.admit(b, false, 2, 4), Ok(()));
        // A proxy is not limited per address, only in total.
        assert_eq!(c.admit(proxy, true, 2, 4), Ok(()));
        assert_eq!(c.admit(proxy, true, 2, 4), Err(Refused::Total));
        assert_eq!(c.admit(b, false, 2, 4), Err(Refused::Total));
        assert_eq!(c.total(), 4);
        c.release(a2, false);
        assert_eq!(c.admit(a, false, 2, 4), Ok(()), "freed by the /64");
        for (ip, proxy) in [(a, false), (a, false), (b, false), (proxy, true)] {
            c.release(ip, proxy);
        }
        assert_eq!((c.total(), c.addresses()), (0, 0));
    }
}
