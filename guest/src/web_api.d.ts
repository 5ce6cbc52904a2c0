// Generated from guest/src/web_api.rs by its test (ts-rs); do not edit by hand.

export type RuleInfo = { 
/**
 * The rule's id (`rule.rule_id` in the TOML).
 */
ruleId: string, 
/**
 * The rule's name.
 */
name: string, 
/**
 * The rule's description.
 */
description: string, 
/**
 * `low`, `medium`, `high` or `critical`.
 */
severity: string, 
/**
 * 0 to 100.
 */
riskScore: number, 
/**
 * The KQL query the detector evaluates (the profile's).
 */
query: string, 
/**
 * The profile the detector runs.
 */
profile: Profile, 
/**
 * How many exception items it applies.
 */
exceptionItems: number, 
/**
 * MITRE ATT&CK tactics, as `ID name`.
 */
tactics: Array<string>, 
/**
 * MITRE ATT&CK techniques, as `ID name`.
 */
techniques: Array<string>, 
/**
 * The query's warnings, as `offset: message`.
 */
warnings: Array<string>, };

export type Profile = "faithful" | "hardened";

export type RuleFailure = { 
/**
 * What kind of failure.
 */
kind: RuleFailureKind, 
/**
 * What went wrong, for people.
 */
message: string, 
/**
 * Byte offset of a query syntax error in the query text.
 */
offset?: number, };

export type RuleFailureKind = "invalid-rule" | "unsupported-rule-type" | "unsupported-language" | "query-syntax" | "invalid-profile" | "invalid-exceptions";
