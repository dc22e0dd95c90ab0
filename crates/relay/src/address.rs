//! Client addresses as the per-address limits see them.

use std::net::{IpAddr, Ipv4Addr};

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
}
