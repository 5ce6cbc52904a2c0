//! The hardened profile's coverage: which control-plane operations and which VM extension
//! handlers count as running code on a machine, each with its source.
//!
//! The table is data (`rules/azure_vm_extension_deployment_by_user.coverage.toml`); the
//! hardened query and the README's coverage table are both generated from it, so adding a
//! handler is adding one row.

use std::fmt::Write as _;

use serde::Deserialize;

/// The seed rule's coverage table, as shipped in `rules/`.
pub const SEED_COVERAGE_TOML: &str =
    include_str!("../../../rules/azure_vm_extension_deployment_by_user.coverage.toml");

/// Where a row's facts come from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The page's title.
    pub title: String,
    /// The page's address.
    pub url: String,
}

impl Source {
    /// A source names a page: a title and an `https://` address.
    pub fn is_given(&self) -> bool {
        !self.title.trim().is_empty() && self.url.starts_with("https://") && self.url.len() > 8
    }
}

/// How an operation runs code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    /// Writes an extension: code runs when the extension is one of the table's handlers.
    Extension,
    /// Runs a script: every success counts.
    RunCommand,
}

/// An Azure Resource Manager operation of the channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// The operation name, as Elastic stores it.
    pub name: String,
    /// The resource type it acts on.
    pub resource_type: String,
    /// How it runs code.
    pub channel: Channel,
    /// Where the operation is documented.
    pub source: Source,
}

/// A VM extension handler that executes code.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    /// The handler's publisher (`properties.publisher` of the request body).
    pub publisher: String,
    /// The handler's type (`properties.type` of the request body).
    #[serde(rename = "type")]
    pub kind: String,
    /// Instance names the handler gets when the deployer does not choose one.
    pub default_names: Vec<String>,
    /// What it executes.
    pub executes: String,
    /// Where the handler is documented.
    pub source: Source,
}

/// The coverage table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Coverage {
    /// The rule's own resource-id patterns, kept first so the profile covers the rule.
    pub rule_id_patterns: Vec<String>,
    /// The operations, in table order.
    #[serde(rename = "operation")]
    pub operations: Vec<Operation>,
    /// The handlers, in table order.
    #[serde(rename = "handler")]
    pub handlers: Vec<Handler>,
}

/// Why a coverage table is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageError(pub String);

impl std::fmt::Display for CoverageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid coverage table: {}", self.0)
    }
}

impl std::error::Error for CoverageError {}

/// A value that can be written in KQL without quotes or escapes.
fn plain(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/'))
}

impl Coverage {
    /// Loads a coverage table from its TOML text and checks every value can be written in the
    /// query as it is.
    pub fn from_toml(text: &str) -> Result<Coverage, CoverageError> {
        let coverage: Coverage =
            toml::from_str(text).map_err(|e| CoverageError(e.message().to_owned()))?;
        for op in &coverage.operations {
            if !plain(&op.name) {
                return Err(CoverageError(format!("operation name {:?}", op.name)));
            }
        }
        for h in &coverage.handlers {
            for text in [&h.publisher, &h.kind].into_iter().chain(&h.default_names) {
                if !plain(text) {
                    return Err(CoverageError(format!("handler value {text:?}")));
                }
            }
        }
        for p in &coverage.rule_id_patterns {
            if !plain(&p.replace('*', "")) {
                return Err(CoverageError(format!("rule pattern {p:?}")));
            }
        }
        if !coverage
            .operations
            .iter()
            .any(|o| o.channel == Channel::Extension)
            || coverage.handlers.is_empty()
        {
            return Err(CoverageError(
                "needs an extension operation and a handler".to_owned(),
            ));
        }
        Ok(coverage)
    }

    /// The seed rule's coverage table.
    pub fn seed() -> Coverage {
        match Coverage::from_toml(SEED_COVERAGE_TOML) {
            Ok(c) => c,
            // Part of the build, loaded by a test: cannot be reached.
            Err(e) => unreachable!("the shipped coverage table does not load: {e}"),
        }
    }

    /// Rows (operations then handlers) whose source is missing, by what they name.
    pub fn rows_without_source(&self) -> Vec<String> {
        let ops = self
            .operations
            .iter()
            .filter(|o| !o.source.is_given())
            .map(|o| o.name.clone());
        let handlers = self
            .handlers
            .iter()
            .filter(|h| !h.source.is_given())
            .map(|h| format!("{}/{}", h.publisher, h.kind));
        ops.chain(handlers).collect()
    }

    fn operations_of(&self, channel: Channel) -> Vec<&str> {
        self.operations
            .iter()
            .filter(|o| o.channel == channel)
            .map(|o| o.name.as_str())
            .collect()
    }

    /// `*/EXTENSIONS/NAME` for each default instance name that none of the rule's `*CORE*`
    /// patterns already covers, in table order.
    pub fn default_name_patterns(&self) -> Vec<String> {
        let cores: Vec<String> = self
            .rule_id_patterns
            .iter()
            .filter(|p| p.len() > 2 && p.starts_with('*') && p.ends_with('*'))
            .map(|p| p.trim_matches('*').to_ascii_uppercase())
            .collect();
        let mut out: Vec<String> = Vec::new();
        for h in &self.handlers {
            for name in &h.default_names {
                let tail = format!("/EXTENSIONS/{}", name.to_ascii_uppercase());
                let pattern = format!("*{tail}");
                if !cores.iter().any(|c| tail.contains(c.as_str()))
                    && !out.contains(&pattern)
                    && !self.rule_id_patterns.contains(&pattern)
                {
                    out.push(pattern);
                }
            }
        }
        out
    }

    /// The hardened query, in KQL: user (or group) principals, successes, and either an
    /// extension write naming a handler or a run command.
    ///
    /// An extension names a handler by the request body's publisher and type when the body is
    /// logged (the ground truth: a monitoring agent installed under a handler's default name
    /// stays quiet), else by a default instance name; the rule's own id patterns hold either
    /// way, so the profile alerts on everything the rule alerts on.
    pub fn query_text(&self) -> String {
        let mut q = String::new();
        q.push_str("data_stream.dataset:azure.activitylogs and\n");
        q.push_str(
            "azure.activitylogs.identity.authorization.evidence.principal_type:(User or Group) and\n",
        );
        q.push_str("event.outcome:success and\n(\n    (\n");
        let list = |q: &mut String, indent: &str, items: &[String]| {
            for (i, item) in items.iter().enumerate() {
                let sep = if i + 1 < items.len() { " or" } else { "" };
                let _ = writeln!(q, "{indent}{item}{sep}");
            }
        };
        let quoted = |names: Vec<&str>| -> Vec<String> {
            names.into_iter().map(|n| format!("\"{n}\"")).collect()
        };
        q.push_str("        azure.activitylogs.operation_name:(\n");
        list(
            &mut q,
            "            ",
            &quoted(self.operations_of(Channel::Extension)),
        );
        q.push_str("        ) and\n        (\n            azure.resource.id:(\n");
        list(&mut q, "                ", &self.rule_id_patterns);
        q.push_str("            ) or\n");
        // One clause per publisher, its types in table order.
        let mut publishers: Vec<&str> = Vec::new();
        for h in &self.handlers {
            if !publishers.contains(&h.publisher.as_str()) {
                publishers.push(&h.publisher);
            }
        }
        let clauses: Vec<String> = publishers
            .iter()
            .map(|p| {
                let types: Vec<&str> = self
                    .handlers
                    .iter()
                    .filter(|h| h.publisher == *p)
                    .map(|h| h.kind.as_str())
                    .collect();
                format!(
                    "(vmext.extension.publisher:\"{p}\" and vmext.extension.type:({}))",
                    types.join(" or ")
                )
            })
            .collect();
        let defaults = self.default_name_patterns();
        let last = if defaults.is_empty() { "" } else { " or" };
        list(&mut q, "            ", &clauses);
        q.pop();
        q.push_str(last);
        q.push('\n');
        if !defaults.is_empty() {
            q.push_str("            (not vmext.extension.type:* and azure.resource.id:(\n");
            list(&mut q, "                ", &defaults);
            q.push_str("            ))\n");
        }
        q.push_str("        )\n    )");
        let run = self.operations_of(Channel::RunCommand);
        if !run.is_empty() {
            q.push_str(" or\n    azure.activitylogs.operation_name:(\n");
            list(&mut q, "        ", &quoted(run));
            q.push_str("    )");
        }
        q.push_str("\n)\n");
        q
    }

    /// The table as Markdown, for the README: operations, then handlers, each with its source.
    pub fn markdown(&self) -> String {
        let mut out =
            String::from("| Operation | Resource type | Alerts on | Source |\n|---|---|---|---|\n");
        for o in &self.operations {
            let what = match o.channel {
                Channel::Extension => "a handler below (request body or instance name)",
                Channel::RunCommand => "every success (it runs a script)",
            };
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | [{}]({}) |",
                o.name, o.resource_type, what, o.source.title, o.source.url
            );
        }
        out.push_str(
            "\n| Publisher | Type | Default instance names | Executes | Source |\n|---|---|---|---|---|\n",
        );
        for h in &self.handlers {
            let names: Vec<String> = h.default_names.iter().map(|n| format!("`{n}`")).collect();
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} | {} | [{}]({}) |",
                h.publisher,
                h.kind,
                names.join(", "),
                h.executes.replace('|', "\\|"),
                h.source.title,
                h.source.url
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_table_loads_and_every_row_has_a_source() {
        let c = Coverage::seed();
        assert_eq!(c.rows_without_source(), Vec::<String>::new());
        vmext_kql::Query::parse(&c.query_text()).unwrap();
    }

    #[test]
    fn a_row_without_a_source_is_reported() {
        let text = SEED_COVERAGE_TOML.replacen(
            "url = \"https://learn.microsoft.com/en-us/azure/virtual-machines/extensions/custom-script-windows\"",
            "url = \"\"",
            1,
        );
        let c = Coverage::from_toml(&text).unwrap();
        assert_eq!(
            c.rows_without_source(),
            ["Microsoft.Compute/CustomScriptExtension"]
        );
        let missing = SEED_COVERAGE_TOML.replacen(
            "source = { title = \"Custom Script Extension for Windows\", url = \"https://learn.microsoft.com/en-us/azure/virtual-machines/extensions/custom-script-windows\" }\n",
            "",
            1,
        );
        assert!(Coverage::from_toml(&missing).is_err());
    }

    #[test]
    fn adding_a_handler_is_one_row() {
        let text = format!(
            "{SEED_COVERAGE_TOML}\n[[handler]]\npublisher = \"Example.Pub\"\ntype = \"Runner\"\ndefault_names = [\"runner-x\"]\nexecutes = \"x\"\nsource = {{ title = \"t\", url = \"https://example.invalid/x\" }}\n"
        );
        let q = Coverage::from_toml(&text).unwrap().query_text();
        assert!(q.contains("*/EXTENSIONS/RUNNER-X"));
        assert!(q.contains(
            "vmext.extension.publisher:\"Example.Pub\" and vmext.extension.type:(Runner)"
        ));
        vmext_kql::Query::parse(&q).unwrap();
    }

    #[test]
    fn values_that_need_quoting_are_refused() {
        let text = SEED_COVERAGE_TOML.replacen("\"CustomScript\"]", "\"Custom Script\"]", 1);
        assert!(Coverage::from_toml(&text).is_err());
    }

    #[test]
    fn default_names_covered_by_a_rule_pattern_are_not_repeated() {
        let ids = Coverage::seed().default_name_patterns();
        assert!(!ids.contains(&"*/EXTENSIONS/VMACCESSAGENT".to_owned()));
        assert!(ids.contains(&"*/EXTENSIONS/ENABLEVMACCESS".to_owned()));
        assert!(ids.contains(&"*/EXTENSIONS/DSC".to_owned()));
    }
}
