//! Elastic's activity-logs ingest pipeline as one table: which ECS fields each top-level key of
//! a raw Azure Activity Log record becomes, by which transform, and how each field relates to
//! the record's text.
//!
//! The table is the single statement of the mapping. Everything that needs the mapping reads
//! it rather than restating it:
//!
//! * the engine's view, [`super::ecs_view`], walks [`RAW_KEYS`], [`OTHER_KEYS`] and
//!   [`RECORD_WRITES`] and applies each [`Transform`];
//! * the literal prefilter's [`super::raw_presence`] looks up a field's [`Presence`] among the
//!   declared [`Field`]s ([`presence_of`]);
//! * the VRL generator (`vmext-vrl`) walks the same table, in the same order, and writes each
//!   transform in VRL, building only the writes whose fields a rule reads.
//!
//! When Elastic changes its pipeline, a row changes here, and the view, the prefilter and the
//! VRL program follow. A transform's code lives with its consumers (the engine's Rust and the
//! generator's VRL); the table says which transform applies to which key and what it writes.

use vmext_kql::Presence;

use super::ACTIVITY_LOGS_DATASET;

/// The prefix of the claim keys whose user parts Elastic copies to
/// `azure.activitylogs.identity.claims_initiated_by_user`.
pub const CLAIMS_PREFIX: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/";

/// The claims under [`CLAIMS_PREFIX`] copied to `claims_initiated_by_user.<part>`; a copied
/// `name` also sets `claims_initiated_by_user.schema` to the prefix without its final `/`.
pub const USER_CLAIMS: [&str; 3] = ["name", "givenname", "surname"];

/// The plain claim key copied to `claims_initiated_by_user.fullname` (and dropped from the
/// claims).
pub const FULLNAME_CLAIM: &str = "name";

/// Keys of `identity.authorization.evidence` renamed to snake case (raw key, ECS key); other
/// evidence keys keep their name.
pub const EVIDENCE_RENAMES: [(&str, &str); 5] = [
    ("principalId", "principal_id"),
    ("principalType", "principal_type"),
    ("roleAssignmentScope", "role_assignment_scope"),
    ("roleAssignmentId", "role_assignment_id"),
    ("roleDefinitionId", "role_definition_id"),
];

/// The ECS path every activity-log specific field lives under.
pub const ACTIVITY_PREFIX: &str = "azure.activitylogs";

/// Which raw values a [`Write`] applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Any value.
    Any,
    /// A JSON string.
    String,
    /// A JSON object.
    Object,
}

impl Guard {
    /// Whether the guard admits `value`.
    pub fn admits(self, value: &vmext_json::Value<'_>) -> bool {
        match self {
            Guard::Any => true,
            Guard::String => matches!(value, vmext_json::Value::String(_)),
            Guard::Object => matches!(value, vmext_json::Value::Object(_)),
        }
    }
}

/// How a [`Write`] turns a raw value (or the whole record) into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The value as it is, at the write's only field. Under [`ACTIVITY_PREFIX`] the field is a
    /// path inside the activity-log object.
    Copy,
    /// `time` normalised to UTC with milliseconds ([`crate::timestamp::normalise`]); nothing
    /// when it is not a timestamp Elastic's pipeline parses.
    Timestamp,
    /// The value as it is at `azure.resource.id`, and for a string the parts
    /// [`super::resource_id_parts`] reads out of it (subscription, group, provider, …).
    ResourceId,
    /// An IP address (normalised) to `source.ip`, `client.ip` and `related.ip` (an array of
    /// one); any other value as it is to `source.address`.
    CallerIp,
    /// Milliseconds, a number or a numeric string, as integer nanoseconds.
    DurationNanos,
    /// The category lower-cased as an `event.type` array: `write`/`action` → `change`, `read`
    /// → `access`, `delete` → `deletion`; nothing for other categories.
    EventType,
    /// The identity object: `authorization` with [`EVIDENCE_RENAMES`] applied to its
    /// evidence, `claims` with `.` in keys replaced by `_` and the [`USER_CLAIMS`] and
    /// [`FULLNAME_CLAIM`] copied out, any other member under `identity.` as it is.
    Identity,
    /// `properties`, decoded first when it is a JSON string: `eventCategory` →
    /// `azure.activitylogs.event_category`, `statusMessage` → `message`,
    /// `serviceRequestId`/`statusCode` → snake case, `requestBody`/`responseBody` decoded
    /// when they are JSON strings; the rest as it is.
    Properties,
    /// Any key the table does not name: the value as it is under [`ACTIVITY_PREFIX`], at the
    /// key split at its dots.
    Activity,
    /// Record level: `event.outcome` is `resultType` lower-cased when that is `success` or
    /// `failure`, otherwise `properties.result` when that is `success`, `failure` or
    /// `unknown`; otherwise absent.
    Outcome,
    /// Record level: `azure.activitylogs.event_category`, when `properties` did not set it, is
    /// `Policy` when `properties.policies` exists and `Administrative` otherwise.
    DefaultEventCategory,
    /// Record level: each field's fixed value ([`Field::value`]).
    Fixed,
    /// Record level: `data_stream.dataset` is [`ACTIVITY_LOGS_DATASET`] (a dotted top-level
    /// key) when the record's `category` is one Elastic routes to it
    /// ([`super::ACTIVITY_LOG_CATEGORIES`]). The detector adds it after the view.
    Dataset,
}

/// How far below a [`Field`]'s path its [`Presence`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// The field itself only.
    Leaf,
    /// The field and every field below it.
    Subtree,
}

/// An ECS field a [`Write`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The dotted ECS path.
    pub path: &'static str,
    /// How the field's values relate to the raw record's text, for the literal prefilter.
    pub presence: Presence,
    /// Whether `presence` also holds below `path`.
    pub extent: Extent,
    /// The fixed value of a [`Transform::Fixed`] or [`Transform::Dataset`] field.
    pub value: Option<&'static str>,
}

impl Field {
    const fn new(path: &'static str, presence: Presence, extent: Extent) -> Field {
        Field {
            path,
            presence,
            extent,
            value: None,
        }
    }

    /// Whether this declaration covers `field`: equal, or below it for a subtree.
    pub fn covers(&self, field: &str) -> bool {
        field == self.path
            || (self.extent == Extent::Subtree
                && field
                    .strip_prefix(self.path)
                    .is_some_and(|rest| rest.starts_with('.')))
    }

    /// The path below [`ACTIVITY_PREFIX`], for a field inside the activity-log object.
    pub fn activity_path(&self) -> Option<&'static str> {
        self.path
            .strip_prefix(ACTIVITY_PREFIX)
            .and_then(|rest| rest.strip_prefix('.'))
    }
}

/// One transform of one raw value (or of the whole record) into some ECS fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Write {
    /// The raw values it applies to.
    pub guard: Guard,
    /// What it does.
    pub transform: Transform,
    /// Every field it may write.
    pub fields: &'static [Field],
}

/// A top-level raw key the pipeline maps to named places.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawKey {
    /// The key, compared exactly.
    pub key: &'static str,
    /// Its writes, in the order they are made.
    pub writes: &'static [Write],
}

use Extent::{Leaf, Subtree};
use Presence::{Opaque, Verbatim};

const fn leaf(path: &'static str, presence: Presence) -> Field {
    Field::new(path, presence, Leaf)
}

const fn subtree(path: &'static str, presence: Presence) -> Field {
    Field::new(path, presence, Subtree)
}

const fn fixed(path: &'static str, value: &'static str) -> Field {
    Field {
        path,
        presence: Opaque,
        extent: Leaf,
        value: Some(value),
    }
}

const fn write(transform: Transform, fields: &'static [Field]) -> Write {
    Write {
        guard: Guard::Any,
        transform,
        fields,
    }
}

/// The raw keys the pipeline maps to named places, in the order the VRL generator tests them.
/// Fields keep the [`Extent`] the prefilter has always assumed: a copied value that is an
/// object puts fields below a [`Extent::Leaf`] path which the prefilter treats as absent.
pub const RAW_KEYS: [RawKey; 15] = [
    RawKey {
        key: "time",
        writes: &[write(Transform::Timestamp, &[leaf("@timestamp", Opaque)])],
    },
    RawKey {
        key: "resourceId",
        writes: &[write(
            Transform::ResourceId,
            &[
                leaf("azure.resource.id", Verbatim),
                leaf("azure.subscription_id", Verbatim),
                leaf("azure.resource.group", Verbatim),
                leaf("azure.resource.provider", Verbatim),
                leaf("azure.resource.name", Verbatim),
                leaf("azure.resource.namespace", Verbatim),
                leaf("azure.resource.authorization_rule", Verbatim),
            ],
        )],
    },
    RawKey {
        key: "callerIpAddress",
        writes: &[write(
            Transform::CallerIp,
            &[
                leaf("source.ip", Opaque),
                leaf("client.ip", Opaque),
                leaf("related.ip", Opaque),
                leaf("source.address", Verbatim),
            ],
        )],
    },
    RawKey {
        key: "level",
        writes: &[write(Transform::Copy, &[leaf("log.level", Verbatim)])],
    },
    RawKey {
        key: "location",
        writes: &[write(Transform::Copy, &[leaf("geo.name", Verbatim)])],
    },
    RawKey {
        key: "durationMs",
        writes: &[write(
            Transform::DurationNanos,
            &[leaf("event.duration", Opaque)],
        )],
    },
    RawKey {
        key: "correlationId",
        writes: &[write(
            Transform::Copy,
            &[leaf("azure.correlation_id", Verbatim)],
        )],
    },
    RawKey {
        key: "operationName",
        writes: &[
            write(Transform::Copy, &[leaf("event.action", Verbatim)]),
            write(
                Transform::Copy,
                &[subtree("azure.activitylogs.operation_name", Verbatim)],
            ),
        ],
    },
    RawKey {
        key: "resultType",
        writes: &[write(
            Transform::Copy,
            &[subtree("azure.activitylogs.result_type", Verbatim)],
        )],
    },
    RawKey {
        key: "resultSignature",
        writes: &[write(
            Transform::Copy,
            &[subtree("azure.activitylogs.result_signature", Verbatim)],
        )],
    },
    RawKey {
        key: "tenantId",
        writes: &[write(
            Transform::Copy,
            &[subtree("azure.activitylogs.tenant_id", Verbatim)],
        )],
    },
    RawKey {
        key: "operationVersion",
        writes: &[write(
            Transform::Copy,
            &[subtree("azure.activitylogs.operation_version", Verbatim)],
        )],
    },
    RawKey {
        key: "identity",
        writes: &[
            Write {
                guard: Guard::Object,
                transform: Transform::Identity,
                fields: &[
                    subtree("azure.activitylogs.identity", Verbatim),
                    // A constant, written when the user's name claim is present.
                    leaf(
                        "azure.activitylogs.identity.claims_initiated_by_user.schema",
                        Opaque,
                    ),
                ],
            },
            Write {
                guard: Guard::String,
                transform: Transform::Copy,
                fields: &[subtree("azure.activitylogs.identity_name", Verbatim)],
            },
        ],
    },
    RawKey {
        key: "properties",
        writes: &[write(
            Transform::Properties,
            &[
                subtree("azure.activitylogs.properties", Verbatim),
                subtree("azure.activitylogs.properties.requestBody", Opaque),
                subtree("azure.activitylogs.properties.responseBody", Opaque),
                leaf("azure.activitylogs.event_category", Opaque),
                leaf("message", Verbatim),
            ],
        )],
    },
    RawKey {
        key: "category",
        writes: &[
            write(
                Transform::Copy,
                &[subtree("azure.activitylogs.category", Verbatim)],
            ),
            write(Transform::EventType, &[leaf("event.type", Opaque)]),
        ],
    },
];

/// What every raw key not in [`RAW_KEYS`] becomes.
pub const OTHER_KEYS: Write = write(Transform::Activity, &[subtree(ACTIVITY_PREFIX, Verbatim)]);

/// The fields written from the whole record once its keys are mapped, in order.
pub const RECORD_WRITES: [Write; 4] = [
    // In the text up to ASCII case: `resultType` is written lower-cased only when that gives
    // `success` or `failure`, and no character but an ASCII capital lower-cases to one of
    // their letters; `properties.result` is written as it is.
    write(
        Transform::Outcome,
        &[leaf("event.outcome", Presence::CaseInsensitive)],
    ),
    write(
        Transform::DefaultEventCategory,
        &[leaf("azure.activitylogs.event_category", Opaque)],
    ),
    write(
        Transform::Fixed,
        &[
            fixed("event.kind", "event"),
            fixed("cloud.provider", "azure"),
        ],
    ),
    write(
        Transform::Dataset,
        &[fixed("data_stream.dataset", ACTIVITY_LOGS_DATASET)],
    ),
];

/// The table's entry for a raw key, if it names it.
pub fn raw_key(key: &str) -> Option<&'static RawKey> {
    RAW_KEYS.iter().find(|k| k.key == key)
}

/// Every write of the table: the keys' in order, then [`OTHER_KEYS`], then [`RECORD_WRITES`].
pub fn all_writes() -> impl Iterator<Item = &'static Write> {
    RAW_KEYS
        .iter()
        .flat_map(|k| k.writes.iter())
        .chain(std::iter::once(&OTHER_KEYS))
        .chain(RECORD_WRITES.iter())
}

/// How `field` of the ECS view relates to a raw record's text: the presence of the most
/// specific declared [`Field`] that covers it, or [`Presence::Absent`] when none does (the view
/// never has the field).
pub fn presence_of(field: &str) -> Presence {
    all_writes()
        .flat_map(|w| w.fields.iter())
        .filter(|f| f.covers(field))
        .max_by_key(|f| f.path.len())
        .map_or(Presence::Absent, |f| f.presence)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `event.outcome` is declared in the text up to ASCII case: a `resultType` whose Unicode
    /// lower-casing is `success` or `failure` is one of them in ASCII letters of either case,
    /// because no character but an ASCII capital lower-cases to an ASCII letter of theirs.
    #[test]
    fn outcome_words_are_in_the_text_up_to_ascii_case() {
        let letters = "successfailure";
        for c in (0..=0x10FFFF).filter_map(char::from_u32) {
            let lower: String = c.to_lowercase().collect();
            if lower.len() == 1 && letters.contains(lower.as_str()) {
                assert!(c.is_ascii_alphabetic(), "{c:?} lower-cases to {lower}");
            }
            // A character that lower-cases to several, one of them such a letter, cannot
            // make the whole word: its other characters are not in the word.
            if lower.chars().count() > 1 {
                assert!(
                    lower.chars().any(|l| !letters.contains(l)),
                    "{c:?} lower-cases to {lower}"
                );
            }
        }
        assert_eq!(
            presence_of("event.outcome"),
            Presence::CaseInsensitive,
            "the table and this test describe the same field"
        );
    }

    #[test]
    fn keys_are_declared_once_and_paths_agree_on_their_presence() {
        for (i, k) in RAW_KEYS.iter().enumerate() {
            assert!(
                RAW_KEYS.iter().skip(i + 1).all(|other| other.key != k.key),
                "{} declared twice",
                k.key
            );
        }
        let fields: Vec<&Field> = all_writes().flat_map(|w| w.fields.iter()).collect();
        for a in &fields {
            for b in &fields {
                if a.path == b.path {
                    assert_eq!(a.presence, b.presence, "{}", a.path);
                    assert_eq!(a.extent, b.extent, "{}", a.path);
                }
            }
        }
    }

    #[test]
    fn the_most_specific_declaration_decides() {
        assert_eq!(presence_of("azure.activitylogs.foo"), Verbatim);
        assert_eq!(presence_of("azure.activitylogs.event_category"), Opaque);
        assert_eq!(presence_of("azure.activitylogs.event_category.x"), Verbatim);
        assert_eq!(
            presence_of("azure.activitylogs.properties.requestBody.a"),
            Opaque
        );
        assert_eq!(presence_of("source.ip"), Opaque);
        assert_eq!(presence_of("source.ip.x"), Presence::Absent);
        assert_eq!(presence_of("user.name"), Presence::Absent);
    }
}
