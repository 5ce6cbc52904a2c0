//! Why a rule cannot be translated to VRL exactly.

/// A construct the translator refuses because VRL would not give the engine's verdict (or
/// alert) for every record. Each names the construct and the reason; nothing is approximated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A value with no field (free text) searches every field of the document, including
    /// every field of a raw record's ECS view, which the program does not build in full.
    #[error(
        "free text `{text}` cannot be translated: it searches every field, and a raw \
         record's full ECS view (decoded properties included) is not built in VRL"
    )]
    FreeText {
        /// The text searched for.
        text: String,
    },
    /// A field name with `*` matches fields by name; VRL cannot list every field with its
    /// dotted path.
    #[error(
        "field pattern `{field}` cannot be translated: VRL has no way to visit every \
         field with its dotted name"
    )]
    FieldPattern {
        /// The pattern as written.
        field: String,
    },
    /// A field name with an empty segment (`a..b`, `.a`, `a.`, or the empty name), whose
    /// lookup rules have no faithful VRL form here.
    #[error("field `{field}` cannot be translated: it has an empty name segment")]
    EmptySegment {
        /// The field as written.
        field: String,
    },
    /// A term on an `ip` field compares addresses and CIDR blocks in a shared IPv6 space.
    #[error(
        "`{field}:{value}` cannot be translated: terms on `ip` fields compare \
         addresses and CIDR blocks with IPv4 mapped into IPv6, which VRL's IP \
         functions do not do"
    )]
    IpTerm {
        /// The field.
        field: String,
        /// The value compared.
        value: String,
    },
    /// The detector runs a profile other than the faithful one. The hardened profile compares
    /// some fields case-insensitively and derives the extension type from the request body;
    /// the translator has no exact form for those views yet.
    #[error(
        "the {profile} profile cannot be translated: its case-insensitive fields and \
         the extension type it reads from the request body have no VRL translation \
         yet; only the faithful profile is generated"
    )]
    Profile {
        /// The profile's name.
        profile: &'static str,
    },
    /// A field of a raw record's ECS view that the program cannot compute exactly.
    #[error("field `{field}` cannot be translated for raw Azure records: {reason}")]
    RawField {
        /// The ECS field.
        field: String,
        /// Why.
        reason: &'static str,
    },
}
