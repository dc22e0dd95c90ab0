//! A new room's configuration (XEP-0045 section 10.1). A server that locks new rooms until
//! their owner configures them (Prosody at its defaults, ejabberd) says so with status 201
//! in our own presence; the room then holds one person until we answer. We ask for the
//! form and submit it with the room temporary, unlisted and unlogged wherever the form
//! has those fields; when the form cannot be had, or the submission is refused, we ask
//! for an instant room (an empty submission: the server's defaults).

use minidom::Element;

use crate::xml::escape;

/// The owner namespace.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// Data forms.
pub const NS_DATA: &str = "jabber:x:data";

/// The fields we set, and their value, where the server's form has them.
pub const PRIVATE_ROOM: &[(&str, &str)] = &[
    ("muc#roomconfig_persistentroom", "0"),
    ("muc#roomconfig_publicroom", "0"),
    ("muc#roomconfig_enablelogging", "0"),
    ("muc#roomconfig_enablearchiving", "0"),
    ("mam", "0"),
];

/// Most fields read from a server's form.
const MAX_FIELDS: usize = 128;

/// Where a room's configuration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The form was asked for.
    AskedForm,
    /// Our values were submitted.
    Submitted,
    /// An instant room was asked for (the last resort).
    Instant,
}

/// `<iq type='get'>` for the room's configuration form.
pub fn ask_form(id: &str, room_jid: &str) -> String {
    format!(
        "<iq type='get' id='{}' to='{}'><query xmlns='{NS_MUC_OWNER}'/></iq>",
        escape(id),
        escape(room_jid)
    )
}

/// `<iq type='set'>` asking for an instant room (an empty submitted form).
pub fn instant(id: &str, room_jid: &str) -> String {
    format!(
        "<iq type='set' id='{}' to='{}'><query xmlns='{NS_MUC_OWNER}'>\
         <x xmlns='{NS_DATA}' type='submit'/></query></iq>",
        escape(id),
        escape(room_jid)
    )
}

/// `<iq type='set'>` submitting [`PRIVATE_ROOM`]'s values for the fields the server's form
/// (the `<query/>` of its answer) has; `None` when the answer holds no form.
pub fn submit(id: &str, room_jid: &str, answer: &Element) -> Option<String> {
    let form = answer
        .get_child("query", NS_MUC_OWNER)?
        .get_child("x", NS_DATA)?;
    let mut fields = String::new();
    for field in form
        .children()
        .filter(|c| c.name() == "field")
        .take(MAX_FIELDS)
    {
        let Some(var) = field.attr("var") else {
            continue;
        };
        if var == "FORM_TYPE" {
            let value = field
                .get_child("value", NS_DATA)
                .map(Element::text)
                .unwrap_or_default();
            fields.push_str(&format!(
                "<field var='FORM_TYPE'><value>{}</value></field>",
                escape(&value)
            ));
        } else if let Some((_, value)) = PRIVATE_ROOM.iter().find(|(name, _)| *name == var) {
            fields.push_str(&format!(
                "<field var='{}'><value>{value}</value></field>",
                escape(var)
            ));
        }
    }
    Some(format!(
        "<iq type='set' id='{}' to='{}'><query xmlns='{NS_MUC_OWNER}'>\
         <x xmlns='{NS_DATA}' type='submit'>{fields}</x></query></iq>",
        escape(id),
        escape(room_jid)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submits_only_the_fields_the_form_has() {
        let answer: Element = "<iq xmlns='jabber:client' type='result'>\
            <query xmlns='http://jabber.org/protocol/muc#owner'>\
            <x xmlns='jabber:x:data' type='form'>\
            <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/muc#roomconfig</value></field>\
            <field var='muc#roomconfig_persistentroom' type='boolean'><value>1</value></field>\
            <field var='muc#roomconfig_publicroom' type='boolean'><value>1</value></field>\
            <field var='muc#roomconfig_roomname' type='text-single'/>\
            </x></query></iq>"
            .parse()
            .unwrap();
        let xml = submit("c1", "room@conference.example.org", &answer).unwrap();
        assert!(xml.contains("<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>"));
        assert!(xml.contains("<field var='muc#roomconfig_persistentroom'><value>0</value></field>"));
        assert!(xml.contains("<field var='muc#roomconfig_publicroom'><value>0</value></field>"));
        assert!(!xml.contains("roomname"));
        assert!(!xml.contains("enablelogging"), "not in the server's form");
        let parsed: Element = xml
            .replace("<iq ", "<iq xmlns='jabber:client' ")
            .parse()
            .unwrap();
        assert_eq!(parsed.attr("type"), Some("set"));
        let no_form: Element = "<iq xmlns='jabber:client' type='result'/>".parse().unwrap();
        assert!(submit("c1", "r@m", &no_form).is_none());
        assert!(instant("c2", "r@m").contains("type='submit'/>"));
    }
}
