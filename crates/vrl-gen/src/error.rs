//! Why a rule cannot be translated to VRL exactly.

use std::fmt;

/// A construct the translator refuses because VRL would not give the engine's verdict (or
/// alert) for every record. Each names the construct and the reason; nothing is approximated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// A value with no field (free text) searches every field of the document, including
    /// every field of a raw record's ECS view, which the program does not build in full.
    FreeText {
        /// The text searched for.
        text: String,
    },
    /// A field name with `*` matches fields by name; VRL cannot list every field with its
    /// dotted path.
    FieldPattern {
        /// The pattern as written.
        field: String,
    },
    /// A field name with an empty segment (`a..b`, `.a`, `a.`, or the empty name), whose
    /// lookup rules have no faithful VRL form here.
    EmptySegment {
        /// The field as written.
        field: String,
    },
    /// A term on an `ip` field compares addresses and CIDR blocks in a shared IPv6 space.
    IpTerm {
        /// The field.
        field: String,
        /// The value compared.
        value: String,
    },
    /// The detector runs a profile other than the faithful one. The hardened profile compares
    /// some fields case-insensitively and derives the extension type from the request body;
    /// the translator has no exact form for those views yet.
    Profile {
        /// The profile's name.
        profile: &'static str,
    },
    /// A field of a raw record's ECS view that the program cannot compute exactly.
    RawField {
        /// The ECS field.
        field: String,
        /// Why.
        reason: &'static str,
    },
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::FreeText { text } => write!(
                f,
                "free text `{text}` cannot be translated: it searches every field, and a raw \
                 record's full ECS view (decoded properties included) is not built in VRL"
            ),
            TranslateError::FieldPattern { field } => write!(
                f,
                "field pattern `{field}` cannot be translated: VRL has no way to visit every \
                 field with its dotted name"
            ),
            TranslateError::EmptySegment { field } => write!(
                f,
                "field `{field}` cannot be translated: it has an empty name segment"
            ),
            TranslateError::IpTerm { field, value } => write!(
                f,
                "`{field}:{value}` cannot be translated: terms on `ip` fields compare \
                 addresses and CIDR blocks with IPv4 mapped into IPv6, which VRL's IP \
                 functions do not do"
            ),
            TranslateError::Profile { profile } => write!(
                f,
                "the {profile} profile cannot be translated: its case-insensitive fields and \
                 the extension type it reads from the request body have no VRL translation \
                 yet; only the faithful profile is generated"
            ),
            TranslateError::RawField { field, reason } => write!(
                f,
                "field `{field}` cannot be translated for raw Azure records: {reason}"
            ),
        }
    }
}

impl std::error::Error for TranslateError {}
