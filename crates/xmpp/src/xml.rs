//! The XML edge: the stream parser shared with the relay ([`cryptocat_xml`]: rxml's
//! sans-IO lexer, which refuses DTDs and entity declarations, plus minidom's tree builder,
//! with size and depth limits), re-exported here; the same limits apply to a server we do
//! not trust.

pub use cryptocat_xml::{
    escape, ParserLimits, StreamHeader, StreamParser, XmlError, XmlEvent, NS_CLIENT, NS_STREAM,
};
