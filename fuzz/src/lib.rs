//! Shared by the fuzz targets: inputs of the form "query on the first line, document after".

use vmext_engine::{Detector, Rule};

/// A detector for the input's first line as a KQL query, and the rest as the document; `None`
/// when the first line is not a query.
pub fn query_and_document(data: &[u8]) -> Option<(Detector, &[u8])> {
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let (query, document) = data.split_at(split);
    let rule = Rule::from_query(std::str::from_utf8(query).ok()?).ok()?;
    Some((Detector::new(rule), document.get(1..).unwrap_or_default()))
}
