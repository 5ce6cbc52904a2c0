//! A literal prefilter: text that every matching record must contain, checked on the raw bytes.
//!
//! Most records in a pipeline cannot match a rule, and proving that costs far less than parsing
//! them. From a query this module derives a [`Requirement`], a formula over "the record's JSON
//! text contains this literal", such that **every record the query matches satisfies it**. A
//! record that does not satisfy it is rejected without building a tree.
//!
//! Soundness rests on three facts:
//!
//! * A value equal to (or matching a wildcard over) a literal contains that literal, so the
//!   decoded text of the record contains it.
//! * JSON may spell the same character several ways (`/` or `\/`, `W` or `\u0057`). Both the
//!   literal and the record are compared in one *canonical* spelling: every escape decoded,
//!   except `"`, `\` and control characters, which are always written `\"`, `\\` and
//!   `\u00xx`. Canonicalising is character by character, so a value containing the literal
//!   canonicalises to text containing the canonical literal. Records with no escape other than
//!   `\"` and `\\` are already canonical and are searched as they are.
//! * What a field's value looks like in the text depends on the record's shape: in a raw Azure
//!   export, `event.type` is computed from the category and is not in the text at all, and
//!   `event.outcome` is `resultType` lower-cased, in the text only up to ASCII case. The caller
//!   describes each shape with a [`FieldPresence`] function and the requirement is the
//!   disjunction over shapes.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, DefaultHasher, Hash, Hasher};

use memchr::{memchr, memmem};

use crate::ast::{Literal, LiteralKind, Node, Piece, ValueList};
use crate::eval::is_ip_field;

/// How a field's indexed values relate to the record's text in one record shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// Every value of the field is a substring of a JSON string or number in the record.
    Verbatim,
    /// Every value of the field is in the text up to ASCII case: the evaluator compares it
    /// ASCII-case-insensitively (a folded field of a hardened profile).
    CaseInsensitive,
    /// The field may have values that are not in the text (computed, normalised, decoded).
    Opaque,
    /// The field never has a value in this shape.
    Absent,
}

/// Tells, for one record shape, how a field's values appear in the text.
pub type FieldPresence<'f> = &'f dyn Fn(&str) -> Presence;

/// A formula over "the record contains this literal".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// Always satisfied: nothing can be required.
    Anything,
    /// Never satisfied: no record of this shape can match.
    Nothing,
    /// The canonical spelling of a literal must occur (up to ASCII case, for a folded needle).
    Contains(Box<Needle>),
    /// All must hold.
    All(Vec<Requirement>),
    /// At least one must hold.
    AnyOf(Vec<Requirement>),
    /// At least one of several literals must occur up to ASCII case: the alternatives of a
    /// disjunction of folded needles, searched together in as few passes over the text as
    /// their shared rare bytes allow.
    AnyFolded(Box<FoldedSet>),
    /// `then`, checked only on text that contains one of the guard's literals up to ASCII case.
    /// The guard adds nothing `then` does not already require: it is the union of what every
    /// alternative of a disjunction needs first, found in fewer passes over the text than the
    /// alternatives take one after the other (see [`Requirement::derive`]). A record that holds
    /// none of them, the common case, is rejected by the guard alone.
    Guarded {
        /// Holds on every text on which `then` holds.
        guard: Box<FoldedSet>,
        /// The requirement itself.
        then: Box<Requirement>,
    },
}

/// A literal in canonical JSON spelling, with its searcher built once.
#[derive(Debug, Clone)]
pub struct Needle {
    literal: String,
    canonical: Vec<u8>,
    /// Matched up to ASCII case; `canonical` is then upper-cased.
    folded: bool,
    finder: memmem::Finder<'static>,
    horspool: Horspool,
    /// For a folded needle: the offset of its rarest byte, searched for in both cases.
    anchor: usize,
    /// For a folded needle with two bytes that have no case (see [`PairPass`]): the search
    /// for them, which stops far less often than the anchor byte's. Chosen only for the
    /// needles that search alone in a finished requirement: most folded needles end up in a
    /// [`FoldedSet`], which has passes of its own.
    pair: Option<Box<PairPass>>,
}

impl PartialEq for Needle {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical && self.folded == other.folded
    }
}

impl Eq for Needle {}

impl Hash for Needle {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // What equality compares, and nothing else.
        self.canonical.hash(state);
        self.folded.hash(state);
    }
}

impl Needle {
    /// The needle for a literal.
    pub fn new(literal: &str) -> Needle {
        let mut canonical = Vec::with_capacity(literal.len());
        for c in literal.chars() {
            push_canonical_char(&mut canonical, c);
        }
        Needle {
            literal: literal.to_owned(),
            finder: memmem::Finder::new(&canonical).into_owned(),
            horspool: Horspool::new(&canonical, false),
            canonical,
            folded: false,
            anchor: 0,
            pair: None,
        }
    }

    /// The needle for a literal matched up to ASCII case. Folding is byte-wise and leaves
    /// every non-ASCII byte alone, so text containing the literal in any ASCII case contains
    /// this needle, in canonical spelling as in raw.
    pub fn case_insensitive(literal: &str) -> Needle {
        let mut needle = Needle::new(literal);
        needle.canonical.make_ascii_uppercase();
        needle.horspool = Horspool::new(&needle.canonical, true);
        needle.anchor = rarest_byte(&needle.canonical);
        needle.folded = true;
        needle
    }

    /// The literal as the query wrote it.
    pub fn literal(&self) -> &str {
        &self.literal
    }

    /// The literal in canonical JSON spelling, as it is searched for (upper-cased when the
    /// needle is [folded](Needle::is_folded)): every character as itself but `"` and `\`,
    /// written `\"` and `\\`, and control characters, written `\u00xx`.
    pub fn canonical(&self) -> &str {
        // Built from a `str` a character at a time, and upper-cased byte-wise in ASCII only.
        std::str::from_utf8(&self.canonical).unwrap_or_default()
    }

    /// Chooses the pair pass of a folded needle that searches alone.
    fn choose_pair(&mut self) {
        if self.folded {
            self.pair = PairPass::choose(std::slice::from_ref(self), &mut vec![0]).map(Box::new);
        }
    }

    /// Whether the needle is matched up to ASCII case.
    pub fn is_folded(&self) -> bool {
        self.folded
    }

    /// Whether `text` contains the needle. Natively, and on wasm32 built with SIMD (the
    /// component), memchr's SIMD search; on wasm32 without SIMD (the Fluent Bit module: its
    /// runtime refuses SIMD), Horspool's skipping search, which looks at roughly one byte in
    /// every needle-length on text that does not contain it.
    fn found_in(&self, text: &[u8]) -> bool {
        if self.folded && cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
            self.horspool.find_folded(&self.canonical, text)
        } else if let Some(pass) = self.pair.as_deref() {
            pass.found_in(std::slice::from_ref(self), text)
        } else if self.folded {
            find_folded_anchored(&self.canonical, self.anchor, text)
        } else if cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
            self.horspool.find(&self.canonical, text)
        } else {
            self.finder.find(text).is_some()
        }
    }
}

/// How common a byte is in activity-log JSON, up to ASCII case (lower is rarer): letters in
/// the order of their frequency in the project's fixtures, JSON punctuation, digits and id
/// separators as the most common. A heuristic only: any choice of anchor gives the same answers.
fn commonness(b: u8) -> usize {
    const LETTERS: &[u8] = b"JQKZWXYFBHGVLDUPMCNAROSTIE";
    match b.to_ascii_uppercase() {
        upper @ b'A'..=b'Z' => 10 + LETTERS.iter().position(|&l| l == upper).unwrap_or(0),
        b'"' | b':' | b',' | b'/' | b'-' | b'.' | b'_' | b' ' | b'0'..=b'9' => 100,
        _ => 0,
    }
}

/// The offset of the rarest byte (the last of equals) in the needle's last 16 bytes: long
/// literals of one query often share a prefix (`MICROSOFT.COMPUTE/…`) that records contain
/// anyway, and differ at the end.
fn rarest_byte(needle: &[u8]) -> usize {
    let start = needle.len().saturating_sub(16);
    let mut best = (usize::MAX, start);
    for (i, &b) in needle.iter().enumerate().skip(start) {
        if commonness(b) <= best.0 {
            best = (commonness(b), i);
        }
    }
    best.1
}

/// Whether `text` contains the upper-cased `needle` up to ASCII case: memchr's SIMD search
/// for the anchor byte in either case, then a comparison of the window around it.
fn find_folded_anchored(needle: &[u8], anchor: usize, text: &[u8]) -> bool {
    let Some(&a) = needle.get(anchor) else {
        return true;
    };
    let (upper, lower) = (a.to_ascii_uppercase(), a.to_ascii_lowercase());
    let tail = needle.len() - anchor;
    let mut from = anchor;
    while let Some(rest) = text.get(from..) {
        if rest.len() < tail {
            return false;
        }
        let Some(off) = memchr::memchr2(upper, lower, rest) else {
            return false;
        };
        let at = from + off;
        if at + tail > text.len() {
            return false;
        }
        if text
            .get(at - anchor..at + tail)
            .is_some_and(|window| window.eq_ignore_ascii_case(needle))
        {
            return true;
        }
        from = at + 1;
    }
    false
}

/// Literals matched up to ASCII case, any one of which satisfies a requirement, with the
/// passes that find them together.
///
/// A pass looks, with one of memchr's SIMD searches, for something every occurrence of its
/// member needles holds at a known offset, and at each hit compares the windows of its members
/// with the text. Two kinds, tried in this order:
///
/// * Pair passes: two bytes that have no case (`/`, `.`, digits…) a fixed distance apart, as
///   the two slashes around `EXTENSIONS` in `…/EXTENSIONS/WRITE`. Activity-log text is full of
///   each byte alone but seldom holds the pair, so the search rarely stops.
/// * Anchor passes: one byte of the needle's last 16 in either case, for needles without two
///   caseless bytes in their last 24 (`USER`, `VMACCESSAGENT`), for any left over once four
///   pair passes are chosen, and for every needle of a set of more than 64.
///
/// Needles share a pass when they hold its pair (or byte): the nine operation names of the
/// hardened profile take two pair passes, one for a slash eleven bytes after a slash
/// (`/EXTENSIONS/`, `/RUNCOMMAND/`) and one for twelve (`/RUNCOMMANDS/`). Every occurrence of
/// a needle holds its pass's pair (or byte) at the offset the pass records, so the set is found
/// exactly when one of its needles is.
#[derive(Debug, Clone)]
pub struct FoldedSet {
    needles: Vec<Needle>,
    pairs: Vec<PairPass>,
    passes: Vec<AnchorPass>,
    /// The set's search on wasm32 without SIMD (see [`FoldedSet::found_in`]). Built on every
    /// target, so that native tests check it.
    factors: Box<FactorSearch>,
}

/// One pass of a [`FoldedSet`]: an upper-cased anchor byte, and the needles anchored on it
/// with the anchor's offset in each.
#[derive(Debug, Clone)]
struct AnchorPass {
    byte: u8,
    members: Vec<(usize, usize)>,
}

impl PartialEq for FoldedSet {
    fn eq(&self, other: &Self) -> bool {
        self.needles == other.needles
    }
}

impl Eq for FoldedSet {}

impl Hash for FoldedSet {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.needles.hash(state);
    }
}

impl FoldedSet {
    /// The set of `needles` (each matched up to ASCII case, upper-cased), duplicates dropped.
    fn new(needles: Vec<Needle>) -> FoldedSet {
        let mut seen: HashSet<Vec<u8>, FixedState> = HashSet::default();
        let needles: Vec<Needle> = needles
            .into_iter()
            .filter(|n| seen.insert(n.canonical.clone()))
            .collect();
        let mut left: Vec<usize> = (0..needles.len()).collect();
        let mut pairs = Vec::new();
        while needles.len() <= MAX_PAIR_SET
            && pairs.len() < MAX_PAIR_PASSES
            && let Some(pass) = PairPass::choose(&needles, &mut left)
        {
            pairs.push(pass);
        }
        let passes = anchor_passes(&needles, left);
        let factors = Box::new(FactorSearch::new(&needles));
        FoldedSet {
            needles,
            pairs,
            passes,
            factors,
        }
    }

    /// The literals, as the query wrote them.
    pub fn literals(&self) -> impl Iterator<Item = &str> {
        self.needles.iter().map(Needle::literal)
    }

    /// The needles, each matched up to ASCII case.
    pub fn needles(&self) -> &[Needle] {
        &self.needles
    }

    /// How many searches of a text [`FoldedSet::found_in`] makes when the text holds none of
    /// the needles: its passes, or on wasm32 without SIMD one.
    fn pass_count(&self) -> usize {
        if cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
            1
        } else {
            self.pairs.len() + self.passes.len()
        }
    }

    /// Whether `text` contains one of the needles up to ASCII case. On wasm32 without SIMD,
    /// where memchr has no vector search, one skipping pass for the whole set
    /// ([`FactorSearch`]): there the pair passes' portable search (memchr for the first byte,
    /// a word at a time) executed more WebAssembly instructions than nine Horspool searches,
    /// about 33,000 against 27,000 per rejected 1 KB ECS record for `vmext_alerts_hardened`,
    /// and the factor search fewer than either (the fuel count in BENCHMARKS.md).
    fn found_in(&self, text: &[u8]) -> bool {
        if cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
            return self.factors.found_in(&self.needles, text);
        }
        self.pairs
            .iter()
            .any(|pass| pass.found_in(&self.needles, text))
            || self
                .passes
                .iter()
                .any(|pass| pass.found_in(&self.needles, text))
    }
}

impl AnchorPass {
    fn found_in(&self, needles: &[Needle], text: &[u8]) -> bool {
        let (upper, lower) = (self.byte, self.byte.to_ascii_lowercase());
        members_found(needles, &self.members, text, |rest| {
            memchr::memchr2(upper, lower, rest)
        })
    }
}

/// Whether a member needle occurs up to ASCII case around one of the hits `find` reports in
/// `text`. A hit is the offset of what the pass searches for; each member is a needle's index
/// and the offset in that needle where every occurrence of it holds what is searched for.
fn members_found(
    needles: &[Needle],
    members: &[(usize, usize)],
    text: &[u8],
    find: impl Fn(&[u8]) -> Option<usize>,
) -> bool {
    let mut from = 0;
    while let Some(off) = text.get(from..).and_then(&find) {
        let at = from + off;
        let found = members.iter().any(|&(i, offset)| {
            let (Some(needle), Some(start)) = (needles.get(i), at.checked_sub(offset)) else {
                return false;
            };
            text.get(start..start + needle.canonical.len())
                .is_some_and(|window| window.eq_ignore_ascii_case(&needle.canonical))
        });
        if found {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The last 16 bytes of a needle, where anchors are taken from (see [`rarest_byte`]), and
/// their offset in it.
fn anchor_window(needle: &[u8]) -> (usize, &[u8]) {
    let start = needle.len().saturating_sub(16);
    (start, needle.get(start..).unwrap_or_default())
}

/// Chooses anchors for the needles `left` of a set of upper-cased needles, greedily: the byte that the most needles
/// not yet anchored hold in their windows, the rarer of equals, among bytes no commoner than
/// the commonest of the needles' own rarest bytes (so no pass looks for a byte commoner than a
/// needle-by-needle search would). Each needle is anchored on the last occurrence of its
/// pass's byte in its window.
fn anchor_passes(needles: &[Needle], mut left: Vec<usize>) -> Vec<AnchorPass> {
    let limit = left
        .iter()
        .filter_map(|&i| needles.get(i))
        .filter_map(|n| n.canonical.get(rarest_byte(&n.canonical)))
        .map(|&b| commonness(b))
        .max()
        .unwrap_or(0);
    let mut passes = Vec::new();
    while !left.is_empty() {
        let canonical = |i: usize| needles.get(i).map_or(&[][..], |n| n.canonical.as_slice());
        let mut holders = [0usize; 256];
        for &i in &left {
            let (_, window) = anchor_window(canonical(i));
            let mut seen = [false; 256];
            for &b in window {
                let b = usize::from(b.to_ascii_uppercase());
                if let (Some(seen), Some(count)) = (seen.get_mut(b), holders.get_mut(b))
                    && !*seen
                {
                    *seen = true;
                    *count += 1;
                }
            }
        }
        let held = |b: u8| holders.get(usize::from(b)).copied().unwrap_or(0);
        let best = (0..=255u8)
            .filter(|&b| held(b) > 0 && commonness(b) <= limit)
            .max_by_key(|&b| (held(b), std::cmp::Reverse(commonness(b))));
        let Some(byte) = best else {
            // Unreachable: each needle's own rarest byte qualifies. Anchor the rest one by one.
            for &i in &left {
                let n = canonical(i);
                let at = rarest_byte(n);
                let byte = n.get(at).copied().unwrap_or(0).to_ascii_uppercase();
                passes.push(AnchorPass {
                    byte,
                    members: vec![(i, at)],
                });
            }
            break;
        };
        let mut members = Vec::new();
        left.retain(|&i| {
            let (start, window) = anchor_window(canonical(i));
            match window.iter().rposition(|b| b.to_ascii_uppercase() == byte) {
                Some(at) => {
                    members.push((i, start + at));
                    false
                }
                None => true,
            }
        });
        passes.push(AnchorPass { byte, members });
    }
    passes
}

/// How far from a needle's end the bytes of its pair are taken from: as for anchors, the
/// literals of one query often share a prefix that records hold anyway, and differ at the end.
const PAIR_WINDOW: usize = 24;

/// At most this many pair passes in one set: each is a pass over the text, and needles left
/// over share the anchor passes.
const MAX_PAIR_PASSES: usize = 4;

/// Sets of more needles than this take anchor passes only. Such sets come from long value
/// lists (`field:(v1 or v2 or …)`), whose needles seldom share a pair, and choosing pairs for
/// them is not free: a hardened detector for a 900 KB query of 30,000 folded caseless values
/// took 0.9 s to build (natively) with pairs chosen for every set it forms, and 0.3 s with
/// this bound.
const MAX_PAIR_SET: usize = 64;

/// One pass of a [`FoldedSet`] (or of a lone folded [`Needle`]): memchr's packed-pair search
/// for two bytes that have no case, the second `distance` bytes after the first, and the
/// needles that hold that pair, each with the offset of the pair's first byte in it.
///
/// A byte that is not an ASCII letter is the same in every ASCII case of a text, so one
/// case-sensitive search for the pair finds every occurrence of the needles in any case; the
/// window around each hit is then compared up to ASCII case.
#[derive(Debug, Clone)]
struct PairPass {
    search: PairSearch,
    members: Vec<(usize, usize)>,
    /// The bytes, in both ASCII cases, that follow the pair's first byte in some member: a
    /// hit followed by another byte is passed over without comparing any window. Records
    /// hold look-alike pairs (a raw Azure record's claim URIs, `…/ws/2005/05/identity/…`,
    /// hold a slash eleven and a slash twelve bytes after another, twice each), and one
    /// byte tells most of them apart.
    follows: Box<[bool; 256]>,
}

impl PairPass {
    /// The pass for the pair that the most needles of `left` hold in their last
    /// [`PAIR_WINDOW`] bytes (of equals, the farther apart, then the greater bytes), its
    /// holders taken out of `left`; `None` if no needle left holds two caseless bytes there.
    /// Each member is anchored on the last occurrence of the pair in its window.
    fn choose(needles: &[Needle], left: &mut Vec<usize>) -> Option<PairPass> {
        let canonical = |i: usize| needles.get(i).map_or(&[][..], |n| n.canonical.as_slice());
        // Every needle's distinct pairs, sorted so that equal pairs are neighbours and each
        // run's length is the number of needles holding it (sorting, not hashing: a large set
        // has hundreds of thousands of pairs, and hashing them cost seconds).
        let mut all: Vec<(u8, u8, usize)> = Vec::new();
        let mut own: Vec<(u8, u8, usize)> = Vec::with_capacity(PAIR_WINDOW);
        for &i in left.iter() {
            own.clear();
            own.extend(caseless_pairs(canonical(i)).map(|(a, b, d, _)| (a, b, d)));
            own.sort_unstable();
            own.dedup();
            all.extend_from_slice(&own);
        }
        all.sort_unstable();
        let (_, (first, second, distance)) = all
            .chunk_by(|a, b| a == b)
            .filter_map(|run| Some((run.len(), *run.first()?)))
            .max_by_key(|&(count, (first, second, distance))| (count, distance, first, second))?;
        let search = PairSearch::new(first, second, distance)?;
        let mut members = Vec::new();
        let mut follows = Box::new([false; 256]);
        left.retain(|&i| {
            let at = caseless_pairs(canonical(i))
                .filter(|&(a, b, d, _)| (a, b, d) == (first, second, distance))
                .map(|(_, _, _, at)| at)
                .last();
            match at {
                Some(at) => {
                    members.push((i, at));
                    // The pair's second byte is after the first, so the needle has this byte.
                    if let Some(&next) = canonical(i).get(at + 1) {
                        for b in [next, next.to_ascii_lowercase()] {
                            if let Some(slot) = follows.get_mut(usize::from(b)) {
                                *slot = true;
                            }
                        }
                    }
                    false
                }
                None => true,
            }
        });
        Some(PairPass {
            search,
            members,
            follows,
        })
    }

    fn found_in(&self, needles: &[Needle], text: &[u8]) -> bool {
        members_found(needles, &self.members, text, |rest| {
            let mut from = 0;
            loop {
                let at = from + self.search.find(rest.get(from..)?)?;
                let next = rest.get(at + 1).copied().unwrap_or_default();
                if self
                    .follows
                    .get(usize::from(next))
                    .copied()
                    .unwrap_or(false)
                {
                    return Some(at);
                }
                from = at + 1;
            }
        })
    }
}

/// The pairs of neighbouring caseless bytes (not ASCII letters, with none between them) in the
/// last [`PAIR_WINDOW`] bytes of an upper-cased needle: the first byte, the second, their
/// distance and the first's offset. Neighbours only, so a needle has at most 23 pairs and
/// choosing passes stays linear in the query even for a large set (a query of 1 MiB of
/// digit-only values has tens of thousands of needles, all caseless); the pairs that matter,
/// the slashes around a segment, are neighbours anyway.
fn caseless_pairs(needle: &[u8]) -> impl Iterator<Item = (u8, u8, usize, usize)> + '_ {
    let start = needle.len().saturating_sub(PAIR_WINDOW);
    let caseless = needle
        .iter()
        .enumerate()
        .skip(start)
        .filter(|(_, b)| !b.is_ascii_alphabetic());
    caseless
        .clone()
        .zip(caseless.skip(1))
        .map(|((i, &first), (j, &second))| (first, second, j - i, i))
}

/// memchr's packed-pair candidate search for one byte followed by another at a fixed distance:
/// the vector search where the target has one and the text is long enough for it, else the
/// portable one (memchr for the first byte, then a look at the second).
#[derive(Debug, Clone, Copy)]
struct PairSearch {
    portable: memchr::arch::all::packedpair::Finder,
    vector: Option<VectorPair>,
}

impl PairSearch {
    /// `None` if the distance is 0 or over 255 (memchr's limit).
    fn new(first: u8, second: u8, distance: usize) -> Option<PairSearch> {
        let index2 = u8::try_from(distance).ok()?;
        let mut needle = vec![first; distance + 1];
        if let Some(last) = needle.last_mut() {
            *last = second;
        }
        let pair = memchr::arch::all::packedpair::Pair::with_indices(&needle, 0, index2)?;
        Some(PairSearch {
            portable: memchr::arch::all::packedpair::Finder::with_pair(&needle, pair)?,
            vector: VectorPair::new(&needle, pair),
        })
    }

    /// The offset of the first place in `text` where the first byte is followed by the second
    /// at the distance.
    fn find(&self, text: &[u8]) -> Option<usize> {
        match self.vector {
            Some(vector) if text.len() >= vector.min_haystack_len() => vector.find(text),
            _ => self.portable.find_prefilter(text),
        }
    }
}

/// The target's vector packed-pair search, where memchr has one (none on wasm32 without SIMD).
#[derive(Debug, Clone, Copy)]
enum VectorPair {
    #[cfg(target_arch = "x86_64")]
    Avx2(memchr::arch::x86_64::avx2::packedpair::Finder),
    #[cfg(target_arch = "x86_64")]
    Sse2(memchr::arch::x86_64::sse2::packedpair::Finder),
    #[cfg(target_arch = "aarch64")]
    Neon(memchr::arch::aarch64::neon::packedpair::Finder),
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128(memchr::arch::wasm32::simd128::packedpair::Finder),
}

// On a target without a vector search the enum has no variant, and the methods' arguments go
// unused.
#[cfg_attr(
    not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        all(target_arch = "wasm32", target_feature = "simd128")
    )),
    allow(unused_variables)
)]
impl VectorPair {
    fn new(needle: &[u8], pair: memchr::arch::all::packedpair::Pair) -> Option<VectorPair> {
        #[cfg(target_arch = "x86_64")]
        {
            use memchr::arch::x86_64::{avx2, sse2};
            avx2::packedpair::Finder::with_pair(needle, pair)
                .map(VectorPair::Avx2)
                .or_else(|| sse2::packedpair::Finder::with_pair(needle, pair).map(VectorPair::Sse2))
        }
        #[cfg(target_arch = "aarch64")]
        {
            memchr::arch::aarch64::neon::packedpair::Finder::with_pair(needle, pair)
                .map(VectorPair::Neon)
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            memchr::arch::wasm32::simd128::packedpair::Finder::with_pair(needle, pair)
                .map(VectorPair::Simd128)
        }
        #[cfg(not(any(
            target_arch = "x86_64",
            target_arch = "aarch64",
            all(target_arch = "wasm32", target_feature = "simd128")
        )))]
        {
            None
        }
    }

    /// The shortest text the vector search accepts (memchr's searches panic on shorter ones).
    fn min_haystack_len(&self) -> usize {
        match *self {
            #[cfg(target_arch = "x86_64")]
            VectorPair::Avx2(f) => f.min_haystack_len(),
            #[cfg(target_arch = "x86_64")]
            VectorPair::Sse2(f) => f.min_haystack_len(),
            #[cfg(target_arch = "aarch64")]
            VectorPair::Neon(f) => f.min_haystack_len(),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            VectorPair::Simd128(f) => f.min_haystack_len(),
        }
    }

    fn find(&self, text: &[u8]) -> Option<usize> {
        match *self {
            #[cfg(target_arch = "x86_64")]
            VectorPair::Avx2(f) => f.find_prefilter(text),
            #[cfg(target_arch = "x86_64")]
            VectorPair::Sse2(f) => f.find_prefilter(text),
            #[cfg(target_arch = "aarch64")]
            VectorPair::Neon(f) => f.find_prefilter(text),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            VectorPair::Simd128(f) => f.find_prefilter(text),
        }
    }
}

/// A skipping search for a set of folded needles at once, in one pass: backward nondeterministic
/// DAWG matching (BNDM, Navarro and Raffinot), bit-parallel, with the tables of all the needles'
/// last `width` bytes or-ed together, and both ASCII cases of each letter given its bits.
///
/// A window of `width` bytes is read backwards while what was read is, up to case, a factor of
/// one of the needles' tails; in activity-log text that stops after two or three bytes, and the
/// window moves by nearly its width. Or-ing the tables only adds factors, so no occurrence is
/// skipped; a window that reads to its start is checked against each needle in full.
///
/// Written for the Fluent Bit module, where WAMR interprets every instruction and memchr has no
/// vector search: Horspool's shifts on a folded needle are short (the record's letters, in
/// either case, are mostly in an operation name), so nine Horspool searches took about 19,000
/// instructions on a rejected 1 KB record. No crate offers a folded multi-needle BNDM.
#[derive(Debug, Clone)]
struct FactorSearch {
    /// For each byte, bit `width - 1 - i` is set if some needle's tail has it (in some ASCII
    /// case) at offset `i`.
    masks: Box<[u64; 256]>,
    /// The tail length: the shortest needle's, at most 64 (the bits of a mask).
    width: usize,
}

impl FactorSearch {
    fn new(needles: &[Needle]) -> FactorSearch {
        let width = needles
            .iter()
            .map(|n| n.canonical.len())
            .min()
            .unwrap_or(0)
            .min(64);
        let mut masks = Box::new([0u64; 256]);
        for needle in needles {
            let tail = needle
                .canonical
                .get(needle.canonical.len() - width..)
                .unwrap_or_default();
            for (i, &b) in tail.iter().enumerate() {
                let bit = 1u64 << (width - 1 - i);
                for c in [b, b.to_ascii_lowercase()] {
                    if let Some(mask) = masks.get_mut(usize::from(c)) {
                        *mask |= bit;
                    }
                }
            }
        }
        FactorSearch { masks, width }
    }

    /// Whether `text` contains one of `needles` (those the search was built from) up to ASCII
    /// case.
    fn found_in(&self, needles: &[Needle], text: &[u8]) -> bool {
        let width = self.width;
        if width == 0 {
            return true;
        }
        let top = 1u64 << (width - 1);
        let full = if width == 64 {
            u64::MAX
        } else {
            (1u64 << width) - 1
        };
        // `end` is the end of the window: a needle's tail that ends there ends at `end`.
        let mut end = width;
        while end <= text.len() {
            let mut state = full;
            let mut read = 0;
            let mut shift = width;
            while let Some(&b) = end.checked_sub(read + 1).and_then(|i| text.get(i)) {
                state &= self.masks.get(usize::from(b)).copied().unwrap_or(0);
                read += 1;
                if state == 0 {
                    break;
                }
                if state & top != 0 {
                    if read < width {
                        // What was read is the start of some tail: a window that begins
                        // there may hold it.
                        shift = width - read;
                    } else {
                        if needles.iter().any(|n| ends_at(&n.canonical, text, end)) {
                            return true;
                        }
                        break;
                    }
                }
                state = (state << 1) & full;
            }
            end += shift;
        }
        false
    }
}

/// Whether the upper-cased `needle` occurs in `text` up to ASCII case, ending at `end`.
fn ends_at(needle: &[u8], text: &[u8], end: usize) -> bool {
    end.checked_sub(needle.len())
        .and_then(|start| text.get(start..end))
        .is_some_and(|window| window.eq_ignore_ascii_case(needle))
}

/// Boyer–Moore–Horspool: the bad-character shift table of a needle.
#[derive(Debug, Clone)]
struct Horspool {
    shift: [u8; 256],
}

impl Horspool {
    /// The table for `needle`; with `folded`, for an upper-cased needle matched up to ASCII
    /// case (both cases of a letter get its shift).
    fn new(needle: &[u8], folded: bool) -> Horspool {
        // Shifts are capped at 255; a longer needle simply skips less than it could.
        let default = u8::try_from(needle.len()).unwrap_or(u8::MAX);
        let mut shift = [default; 256];
        if let Some((_, init)) = needle.split_last() {
            for (i, b) in init.iter().enumerate() {
                let distance = needle.len() - 1 - i;
                let Ok(d) = u8::try_from(distance) else {
                    continue;
                };
                let cases = if folded {
                    [b.to_ascii_uppercase(), b.to_ascii_lowercase()]
                } else {
                    [*b, *b]
                };
                for c in cases {
                    if let Some(slot) = shift.get_mut(usize::from(c)) {
                        *slot = d;
                    }
                }
            }
        }
        Horspool { shift }
    }

    /// Like [`Horspool::find`] for an upper-cased needle, comparing up to ASCII case.
    fn find_folded(&self, needle: &[u8], text: &[u8]) -> bool {
        let n = needle.len();
        let Some(&last) = needle.last() else {
            return true;
        };
        let mut at = 0;
        while let Some(&b) = text.get(at + n - 1) {
            if b.to_ascii_uppercase() == last
                && text
                    .get(at..at + n)
                    .is_some_and(|window| window.eq_ignore_ascii_case(needle))
            {
                return true;
            }
            at += usize::from(self.shift.get(usize::from(b)).copied().unwrap_or(1)).max(1);
        }
        false
    }

    fn find(&self, needle: &[u8], text: &[u8]) -> bool {
        let n = needle.len();
        let Some(&last) = needle.last() else {
            return true;
        };
        let mut at = 0;
        while let Some(&b) = text.get(at + n - 1) {
            if b == last && text.get(at..at + n) == Some(needle) {
                return true;
            }
            at += usize::from(self.shift.get(usize::from(b)).copied().unwrap_or(1)).max(1);
        }
        false
    }
}

impl Requirement {
    /// What a record of one shape must contain for `node` to hold on it.
    pub fn derive(node: &Node, presence: FieldPresence<'_>) -> Requirement {
        derive(node, "", presence)
            .simplify()
            .with_guards()
            .with_lone_pairs()
    }

    /// Combines the requirements of several shapes: a record may be any of them.
    pub fn any_shape(shapes: Vec<Requirement>) -> Requirement {
        let shapes = shapes.into_iter().map(Requirement::unguarded).collect();
        Requirement::AnyOf(shapes)
            .simplify()
            .with_guards()
            .with_lone_pairs()
    }

    /// The requirement without its guards (to be simplified again: a guard hides the
    /// conjuncts behind it from factoring).
    fn unguarded(self) -> Requirement {
        match self {
            Requirement::Guarded { then, .. } => then.unguarded(),
            Requirement::All(items) => {
                Requirement::All(items.into_iter().map(Requirement::unguarded).collect())
            }
            Requirement::AnyOf(items) => {
                Requirement::AnyOf(items.into_iter().map(Requirement::unguarded).collect())
            }
            other => other,
        }
    }

    /// Puts a [guard](Requirement::Guarded) before each disjunction whose alternatives each
    /// need a folded literal first, when one set of all those literals takes fewer passes than
    /// the alternatives' own sets one after the other.
    ///
    /// The hardened profile needs it: its extension writes are `(any of four operation names
    /// and a handler)` or one of five Run Command operation names. A record that holds none
    /// took the four names' pass (a slash eleven bytes after a slash) and then the five
    /// names' two passes (eleven again, and twelve); one set of all nine takes two passes. On
    /// wasm32 without SIMD, where a set is one [`FactorSearch`], the guard is one search where
    /// the alternatives took two.
    fn with_guards(self) -> Requirement {
        match self {
            Requirement::All(items) => {
                Requirement::All(items.into_iter().map(Requirement::with_guards).collect())
            }
            Requirement::AnyOf(items) => {
                let items: Vec<Requirement> =
                    items.into_iter().map(Requirement::with_guards).collect();
                let firsts: Option<Vec<&Requirement>> = items.iter().map(first_folded).collect();
                let Some(firsts) = firsts.filter(|f| f.len() > 1) else {
                    return Requirement::AnyOf(items);
                };
                let passes: usize = firsts.iter().map(|r| folded_passes(r)).sum();
                let needles: Vec<Needle> = firsts
                    .iter()
                    .flat_map(|r| match r {
                        Requirement::Contains(n) => std::slice::from_ref(&**n),
                        Requirement::AnyFolded(set) => set.needles.as_slice(),
                        _ => &[],
                    })
                    .cloned()
                    .collect();
                let guard = FoldedSet::new(needles);
                if guard.pass_count() < passes {
                    Requirement::Guarded {
                        guard: Box::new(guard),
                        then: Box::new(Requirement::AnyOf(items)),
                    }
                } else {
                    Requirement::AnyOf(items)
                }
            }
            other => other,
        }
    }

    /// The finished requirement, with a pair pass chosen for each folded needle that searches
    /// alone (not in a [`FoldedSet`]).
    fn with_lone_pairs(mut self) -> Requirement {
        let mut stack = vec![&mut self];
        while let Some(r) = stack.pop() {
            match r {
                Requirement::Contains(needle) if needle.pair.is_none() => needle.choose_pair(),
                Requirement::All(items) | Requirement::AnyOf(items) => stack.extend(items),
                Requirement::Guarded { then, .. } => stack.push(then),
                _ => {}
            }
        }
        self
    }

    /// Whether the record's JSON text can satisfy the query. `false` proves it cannot.
    pub fn admits(&self, record: &[u8]) -> bool {
        let mut text = Haystack::new(record);
        self.admits_text(&mut text)
    }

    /// [`Requirement::admits`] for text that [`vmext_json::validate_escapes`] found valid,
    /// given what it found of the escapes. Valid text without escapes other than `\"` and
    /// `\\` is already in canonical spelling, so the search for a backslash that would tell
    /// is skipped: a caller that validates anyway (the Fluent Bit filter in annotate mode) does
    /// not pay for that pass twice.
    pub fn admits_validated(&self, record: &[u8], escapes: vmext_json::Escapes) -> bool {
        let mut text = Haystack::new(record);
        if escapes == vmext_json::Escapes::QuoteAndBackslashOnly {
            text.canonical = Some(None);
        }
        self.admits_text(&mut text)
    }

    fn admits_text(&self, text: &mut Haystack<'_>) -> bool {
        match self {
            Requirement::Anything => true,
            Requirement::Nothing => false,
            Requirement::Contains(needle) => text.contains(needle),
            Requirement::All(items) => items.iter().all(|r| r.admits_text(text)),
            Requirement::AnyOf(items) => items.iter().any(|r| r.admits_text(text)),
            Requirement::AnyFolded(set) => text.contains_any(set),
            Requirement::Guarded { guard, then } => {
                text.contains_any(guard) && then.admits_text(text)
            }
        }
    }

    /// Flattens, drops neutral elements, factors conjuncts shared by every alternative, and
    /// orders conjunctions so the longest (usually rarest) literals are tried first.
    ///
    /// Near-linear in the size of the formula: duplicates are found by hashing, never by
    /// comparing each element with all earlier ones, so a query of 100,000 terms compiles in a
    /// fraction of a second.
    fn simplify(self) -> Requirement {
        match self {
            Requirement::All(items) => {
                normal_all(items.into_iter().map(Requirement::simplify).collect())
            }
            Requirement::AnyOf(items) => {
                normal_any(items.into_iter().map(Requirement::simplify).collect())
            }
            other => other,
        }
    }

    /// Length of the shortest literal that must be found: a rough rarity measure.
    fn weight(&self) -> usize {
        match self {
            Requirement::Contains(n) => n.canonical.len(),
            Requirement::All(items) => items.iter().map(Requirement::weight).max().unwrap_or(0),
            Requirement::AnyOf(items) => items.iter().map(Requirement::weight).min().unwrap_or(0),
            Requirement::AnyFolded(set) => set
                .needles
                .iter()
                .map(|n| n.canonical.len())
                .min()
                .unwrap_or(0),
            Requirement::Guarded { then, .. } => then.weight(),
            Requirement::Anything | Requirement::Nothing => 0,
        }
    }

    /// The literals mentioned, for documentation and diagnostics.
    pub fn needles(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(r) = stack.pop() {
            match r {
                Requirement::Contains(n) => out.push(n.literal()),
                Requirement::AnyFolded(set) => out.extend(set.needles.iter().map(Needle::literal)),
                Requirement::All(items) | Requirement::AnyOf(items) => {
                    stack.extend(items.iter().rev())
                }
                // The guard's literals are those of the requirement behind it.
                Requirement::Guarded { then, .. } => stack.push(then),
                _ => {}
            }
        }
        out
    }
}

/// One term of a requirement written out flat, in prefix order: [`Term::All`] and
/// [`Term::AnyOf`] are followed by their operands. This is how a requirement crosses a boundary
/// that has no recursive types, such as the component's WIT interface, so that a host can run
/// the guest's prefilter itself ([`Requirement::terms`], [`Requirement::from_terms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Always satisfied.
    Anything,
    /// Never satisfied.
    Nothing,
    /// The text contains the literal, in canonical JSON spelling (see the module's doc), up to
    /// ASCII case when `case_insensitive`.
    Contains {
        /// The literal as the query wrote it.
        literal: String,
        /// Whether it is matched up to ASCII case.
        case_insensitive: bool,
    },
    /// All of the next this many requirements hold.
    All(u32),
    /// At least one of the next this many requirements holds.
    AnyOf(u32),
}

/// Why a list of [`Term`]s is not one requirement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// The list ends before the last operator has all its operands.
    #[error("the terms end before an operator has all its operands")]
    Truncated,
    /// Terms follow the one requirement the list should hold.
    #[error("terms follow the end of the requirement, from term {0}")]
    Trailing(usize),
    /// Operators nest deeper than [`MAX_TERM_DEPTH`].
    #[error("the terms nest deeper than {MAX_TERM_DEPTH} operators")]
    TooDeep,
    /// The list is longer than [`MAX_TERMS`].
    #[error("more than {MAX_TERMS} terms")]
    TooMany,
}

/// The deepest nesting of operators [`Requirement::from_terms`] takes. A requirement derived
/// from a query nests about as deep as the query, which nests at most [`crate::MAX_NESTING`]
/// levels (factoring a shared conjunct out of a disjunction, and the disjunction over shapes,
/// each add a level); the bound leaves room for that four times over and keeps a hostile list
/// from exhausting the stack of the functions that walk the requirement.
pub const MAX_TERM_DEPTH: usize = 4 * crate::parser::MAX_NESTING;

/// The most terms [`Requirement::from_terms`] takes.
pub const MAX_TERMS: usize = 1 << 20;

impl Requirement {
    /// The requirement as flat terms in prefix order. Guards and folded sets are ways of
    /// searching, not part of the formula: a guarded requirement is written as the requirement
    /// behind the guard (which implies the guard), a folded set as the disjunction of its
    /// literals.
    pub fn terms(&self) -> Vec<Term> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let contains = |n: &Needle| Term::Contains {
            literal: n.literal.clone(),
            case_insensitive: n.folded,
        };
        while let Some(r) = stack.pop() {
            match r {
                Requirement::Anything => out.push(Term::Anything),
                Requirement::Nothing => out.push(Term::Nothing),
                Requirement::Contains(n) => out.push(contains(n)),
                Requirement::All(items) => {
                    out.push(Term::All(count(items.len())));
                    stack.extend(items.iter().rev());
                }
                Requirement::AnyOf(items) => {
                    out.push(Term::AnyOf(count(items.len())));
                    stack.extend(items.iter().rev());
                }
                Requirement::AnyFolded(set) => {
                    out.push(Term::AnyOf(count(set.needles.len())));
                    out.extend(set.needles.iter().map(contains));
                }
                Requirement::Guarded { then, .. } => stack.push(then),
            }
        }
        out
    }

    /// The requirement that `terms` write out, finished as [`Requirement::derive`] finishes
    /// one (simplified, with guards and searches chosen): it admits exactly the texts the
    /// requirement that wrote the terms admits. A list that is not one well-formed
    /// requirement, or nests or runs longer than the bounds, is an error.
    pub fn from_terms(terms: &[Term]) -> Result<Requirement, TermsError> {
        if terms.len() > MAX_TERMS {
            return Err(TermsError::TooMany);
        }
        /// An operator still taking operands.
        struct Open {
            all: bool,
            wanted: usize,
            items: Vec<Requirement>,
        }
        let mut open: Vec<Open> = Vec::new();
        for (i, term) in terms.iter().enumerate() {
            let mut done = match term {
                Term::Anything => Requirement::Anything,
                Term::Nothing => Requirement::Nothing,
                // Every text contains the empty literal (a folded set could not anchor it).
                Term::Contains { literal, .. } if literal.is_empty() => Requirement::Anything,
                Term::Contains {
                    literal,
                    case_insensitive,
                } => Requirement::Contains(Box::new(if *case_insensitive {
                    Needle::case_insensitive(literal)
                } else {
                    Needle::new(literal)
                })),
                Term::All(n) | Term::AnyOf(n) => {
                    let all = matches!(term, Term::All(_));
                    let wanted = usize::try_from(*n).unwrap_or(usize::MAX);
                    if wanted == 0 {
                        // Complete at once: `All` of nothing holds, `AnyOf` of nothing fails.
                        close(all, Vec::new())
                    } else if wanted > terms.len() - i - 1 {
                        return Err(TermsError::Truncated);
                    } else if open.len() >= MAX_TERM_DEPTH {
                        return Err(TermsError::TooDeep);
                    } else {
                        open.push(Open {
                            all,
                            wanted,
                            items: Vec::new(),
                        });
                        continue;
                    }
                }
            };
            // Hand the finished requirement to its operator, closing every operator it
            // completes.
            loop {
                match open.last_mut() {
                    None => {
                        return match terms.len() - i - 1 {
                            0 => Ok(done.simplify().with_guards().with_lone_pairs()),
                            _ => Err(TermsError::Trailing(i + 1)),
                        };
                    }
                    Some(o) => {
                        o.items.push(done);
                        if o.items.len() < o.wanted {
                            break;
                        }
                    }
                }
                let Some(o) = open.pop() else { break };
                done = close(o.all, o.items);
            }
        }
        Err(TermsError::Truncated)
    }
}

/// A conjunction or disjunction of finished operands.
fn close(all: bool, items: Vec<Requirement>) -> Requirement {
    if all {
        Requirement::All(items)
    } else {
        Requirement::AnyOf(items)
    }
}

/// The folded requirement an alternative checks first: itself if it is a folded literal or
/// set, else the first such conjunct of a conjunction; `None` if it has none.
fn first_folded(r: &Requirement) -> Option<&Requirement> {
    match r {
        Requirement::Contains(n) if n.folded => Some(r),
        Requirement::AnyFolded(_) => Some(r),
        Requirement::All(items) => items.iter().find(|i| {
            matches!(i, Requirement::AnyFolded(_))
                || matches!(i, Requirement::Contains(n) if n.folded)
        }),
        _ => None,
    }
}

/// How many passes over a text a folded literal or set takes when it holds none of them.
fn folded_passes(r: &Requirement) -> usize {
    match r {
        Requirement::AnyFolded(set) => set.pass_count(),
        _ => 1,
    }
}

/// A hasher with fixed keys: the same in every build and on every target. (The standard
/// library's random keys would ask the operating system for randomness, which the component,
/// given no WASI at all, cannot.) The formula comes from the rule's author, not from records.
type FixedState = BuildHasherDefault<DefaultHasher>;

/// The conjunction of already simplified requirements, simplified: flattened, neutral elements
/// dropped, duplicates removed, the longest literals first.
fn normal_all(items: Vec<Requirement>) -> Requirement {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Requirement::Anything => {}
            Requirement::Nothing => return Requirement::Nothing,
            Requirement::All(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    dedup(&mut flat);
    flat.sort_by_cached_key(|r| std::cmp::Reverse(r.weight()));
    match flat.len() {
        0 => Requirement::Anything,
        1 => flat.pop().unwrap_or(Requirement::Anything),
        _ => Requirement::All(flat),
    }
}

/// The disjunction of already simplified requirements, simplified: flattened, neutral elements
/// dropped, duplicates removed, shared conjuncts factored out.
fn normal_any(items: Vec<Requirement>) -> Requirement {
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Requirement::Nothing => {}
            Requirement::Anything => return Requirement::Anything,
            Requirement::AnyOf(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    dedup(&mut flat);
    let flat = group_folded(flat);
    match flat.len() {
        0 => Requirement::Nothing,
        1 => flat.into_iter().next().unwrap_or(Requirement::Nothing),
        _ => factor_common(flat),
    }
}

/// Gathers the folded needles among the alternatives of a disjunction (and those of folded
/// sets already formed) into one [`FoldedSet`], in the place of the first of them; fewer than
/// two stay as they are.
fn group_folded(alternatives: Vec<Requirement>) -> Vec<Requirement> {
    let is_folded = |r: &Requirement| match r {
        Requirement::Contains(n) => n.folded,
        Requirement::AnyFolded(_) => true,
        _ => false,
    };
    let folded_count: usize = alternatives
        .iter()
        .map(|r| match r {
            Requirement::Contains(n) if n.folded => 1,
            Requirement::AnyFolded(set) => set.needles.len(),
            _ => 0,
        })
        .sum();
    if folded_count < 2 {
        return alternatives;
    }
    let mut needles = Vec::with_capacity(folded_count);
    let mut out = Vec::with_capacity(alternatives.len());
    let mut place = None;
    for alt in alternatives {
        if !is_folded(&alt) {
            out.push(alt);
            continue;
        }
        place.get_or_insert(out.len());
        match alt {
            Requirement::Contains(n) => needles.push(*n),
            Requirement::AnyFolded(set) => needles.extend(set.needles),
            _ => {}
        }
    }
    let set = Requirement::AnyFolded(Box::new(FoldedSet::new(needles)));
    out.insert(place.unwrap_or(0).min(out.len()), set);
    out
}

/// Removes later copies of equal elements, keeping the first of each in its place: one hash
/// look-up per element.
fn dedup(items: &mut Vec<Requirement>) {
    let keep: Vec<bool> = {
        let mut seen: HashSet<&Requirement, FixedState> =
            HashSet::with_capacity_and_hasher(items.len(), FixedState::default());
        items.iter().map(|item| seen.insert(item)).collect()
    };
    let mut keep = keep.into_iter();
    items.retain(|_| keep.next().unwrap_or(true));
}

/// The conjuncts of a simplified requirement: its elements if it is a conjunction, else itself.
fn conjuncts(r: &Requirement) -> &[Requirement] {
    match r {
        Requirement::All(items) => items,
        other => std::slice::from_ref(other),
    }
}

/// `(A and B) or (A and C)` becomes `A and (B or C)`: the shared literal is checked once.
/// The alternatives are simplified and distinct. Linear in their total size.
fn factor_common(alternatives: Vec<Requirement>) -> Requirement {
    let Some((first, others)) = alternatives.split_first() else {
        return Requirement::Nothing;
    };
    // The candidates are the first alternative's conjuncts; each other alternative keeps those
    // it has too. Most disjunctions share nothing, and then this stops at once.
    let mut common: Vec<&Requirement> = conjuncts(first).iter().collect();
    for alt in others {
        if common.is_empty() {
            break;
        }
        let theirs = conjuncts(alt);
        if theirs.len() <= 8 {
            common.retain(|c| theirs.contains(c));
        } else {
            let set: HashSet<&Requirement, FixedState> = theirs.iter().collect();
            common.retain(|c| set.contains(c));
        }
    }
    if common.is_empty() {
        return Requirement::AnyOf(alternatives);
    }
    let shared: HashSet<Requirement, FixedState> = common.into_iter().cloned().collect();
    let mut all: Vec<Requirement> = conjuncts(first)
        .iter()
        .filter(|c| shared.contains(*c))
        .cloned()
        .collect();
    let rests: Vec<Requirement> = alternatives
        .into_iter()
        .map(|alt| {
            let rest = match alt {
                Requirement::All(items) => items,
                other => vec![other],
            };
            // What is left of a simplified conjunction is simplified: only its length matters.
            let mut rest: Vec<Requirement> =
                rest.into_iter().filter(|c| !shared.contains(c)).collect();
            match rest.len() {
                0 => Requirement::Anything,
                1 => rest.pop().unwrap_or(Requirement::Anything),
                _ => Requirement::All(rest),
            }
        })
        .collect();
    all.push(normal_any(rests));
    normal_all(all)
}

fn derive(node: &Node, prefix: &str, presence: FieldPresence<'_>) -> Requirement {
    match node {
        Node::MatchAll | Node::Not(_) | Node::FreeText(_) => Requirement::Anything,
        Node::Or(items) => {
            Requirement::AnyOf(items.iter().map(|n| derive(n, prefix, presence)).collect())
        }
        Node::And(items) => {
            Requirement::All(items.iter().map(|n| derive(n, prefix, presence)).collect())
        }
        Node::Match(m) => {
            if m.field.pattern.is_some() {
                return Requirement::Anything;
            }
            let name = join(prefix, &m.field.name);
            let how = if is_ip_field(&name) {
                // Addresses are normalised and may be matched by CIDR: nothing literal to require.
                match presence(&name) {
                    Presence::Absent => Presence::Absent,
                    _ => Presence::Opaque,
                }
            } else {
                presence(&name)
            };
            derive_list(&m.values, how)
        }
        Node::Range(r) => match presence(&join(prefix, &r.field.name)) {
            Presence::Absent if r.field.pattern.is_none() => Requirement::Nothing,
            _ => Requirement::Anything,
        },
        Node::Nested(n) => {
            if n.field.pattern.is_some() {
                return Requirement::Anything;
            }
            derive(&n.query, &join(prefix, &n.field.name), presence)
        }
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn derive_list(list: &ValueList, how: Presence) -> Requirement {
    match list {
        ValueList::One(literal) => derive_literal(literal, how),
        ValueList::Or(items) => {
            Requirement::AnyOf(items.iter().map(|l| derive_list(l, how)).collect())
        }
        ValueList::And(items) => {
            Requirement::All(items.iter().map(|l| derive_list(l, how)).collect())
        }
        ValueList::Not(_) => Requirement::Anything,
    }
}

fn derive_literal(literal: &Literal, how: Presence) -> Requirement {
    let needle: fn(&str) -> Needle = match how {
        Presence::Absent => return Requirement::Nothing,
        Presence::Opaque => return Requirement::Anything,
        Presence::Verbatim => Needle::new,
        Presence::CaseInsensitive => Needle::case_insensitive,
    };
    let contains = |text: &str| Requirement::Contains(Box::new(needle(text)));
    match &literal.kind {
        LiteralKind::Text(t) if t.is_empty() => Requirement::Anything,
        LiteralKind::Text(t) => contains(t),
        LiteralKind::Bool(b) => contains(if *b { "true" } else { "false" }),
        LiteralKind::Null => contains("null"),
        LiteralKind::Wildcard(pieces) => {
            // One needle per distinct piece: `*x*x*x…` needs `x` once, and building a searcher
            // for each of half a million copies would cost hundreds of megabytes first.
            let mut seen: HashSet<&str, FixedState> = HashSet::default();
            Requirement::All(
                pieces
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Text(t) if !t.is_empty() && seen.insert(t) => Some(contains(t)),
                        _ => None,
                    })
                    .collect(),
            )
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Searching the record text

fn push_canonical_char(out: &mut Vec<u8>, c: char) {
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        c if (c as u32) < 0x20 => {
            out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
        }
        c => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
}

/// A record's text, with its canonical spelling computed only if a search needs it.
struct Haystack<'r> {
    raw: &'r [u8],
    /// `None` until computed; `Some(None)` when the raw text is already canonical.
    canonical: Option<Option<Vec<u8>>>,
}

impl<'r> Haystack<'r> {
    fn new(raw: &'r [u8]) -> Self {
        Haystack {
            raw,
            canonical: None,
        }
    }

    fn contains(&mut self, needle: &Needle) -> bool {
        if needle.found_in(self.raw) {
            return true;
        }
        let raw = self.raw;
        let canonical = self.canonical.get_or_insert_with(|| canonicalise(raw));
        match canonical {
            None => false,
            Some(text) => needle.found_in(text),
        }
    }
}

impl Haystack<'_> {
    fn contains_any(&mut self, set: &FoldedSet) -> bool {
        if set.found_in(self.raw) {
            return true;
        }
        let raw = self.raw;
        let canonical = self.canonical.get_or_insert_with(|| canonicalise(raw));
        match canonical {
            None => false,
            Some(text) => set.found_in(text),
        }
    }
}

/// The offset of the first backslash in `text`. On wasm32 without SIMD (the Fluent Bit module)
/// eight bytes per step in 64-bit arithmetic ([`vmext_json::find_backslash`]): memchr's
/// portable search steps a `usize`, four bytes there, and this check runs over every record the
/// prefilter rejects. Elsewhere memchr's vector search.
fn find_backslash(text: &[u8]) -> Option<usize> {
    if cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
        vmext_json::find_backslash(text)
    } else {
        memchr(b'\\', text)
    }
}

/// The canonical spelling of a record's text, or `None` if it is canonical already.
fn canonicalise(raw: &[u8]) -> Option<Vec<u8>> {
    // Fast check: escapes other than `\"` and `\\` are what make text non-canonical.
    let mut at = 0;
    let mut first_change = None;
    while let Some(off) = raw.get(at..).and_then(find_backslash) {
        let i = at + off;
        match raw.get(i + 1) {
            Some(b'"' | b'\\') => at = i + 2,
            _ => {
                first_change = Some(i);
                break;
            }
        }
    }
    let start = first_change?;
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(raw.get(..start).unwrap_or_default());
    let mut i = start;
    while let Some(&b) = raw.get(i) {
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let (decoded, used) = match vmext_json::decode_escape(raw.get(i + 1..).unwrap_or_default())
        {
            Ok((c, len)) => (Some(c), 1 + len),
            // Kept as written: the backslash and what was read before the problem, of a
            // broken surrogate pair only its first `uXXXX`; the rest is read again.
            Err(e) => (None, 1 + e.offset.min(5)),
        };
        match decoded {
            Some(c) => push_canonical_char(&mut out, c),
            None => out.extend_from_slice(raw.get(i..i + used).unwrap_or_default()),
        }
        i += used;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hardened profile's operation names: a folded set of them takes two pair passes.
    const OPERATIONS: [&str; 9] = [
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE",
        "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/EXTENSIONS/WRITE",
        "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/EXTENSIONS/WRITE",
        "MICROSOFT.HYBRIDCOMPUTE/MACHINES/EXTENSIONS/WRITE",
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION",
        "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/RUNCOMMAND/ACTION",
        "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
        "MICROSOFT.COMPUTE/VIRTUALMACHINESCALESETS/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
        "MICROSOFT.HYBRIDCOMPUTE/MACHINES/RUNCOMMANDS/WRITE",
    ];

    fn folded_set(literals: &[&str]) -> FoldedSet {
        FoldedSet::new(
            literals
                .iter()
                .map(|l| Needle::case_insensitive(l))
                .collect(),
        )
    }

    #[test]
    fn operation_names_are_found_together_in_two_passes() {
        let set = folded_set(&OPERATIONS);
        assert!(set.passes.is_empty(), "{:?}", set.passes);
        // A slash eleven bytes after a slash (`/EXTENSIONS/`, `/RUNCOMMAND/`), and twelve.
        let sizes: Vec<usize> = set.pairs.iter().map(|p| p.members.len()).collect();
        assert_eq!(sizes, [6, 3], "{:?}", set.pairs);
        for op in OPERATIONS {
            let camel = op
                .replace("VIRTUALMACHINES", "virtualMachines")
                .replace("EXTENSIONS/WRITE", "extensions/write");
            for spelling in [op.to_owned(), op.to_ascii_lowercase(), camel] {
                let text = format!(r#"{{"operationName":"{spelling}","x":1}}"#);
                assert!(set.found_in(text.as_bytes()), "{text}");
            }
        }
        let other = br#"{"operationName":"MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE"}"#;
        assert!(!set.found_in(other));
    }

    /// A folded set, and each folded needle alone, is found exactly when a brute-force search
    /// up to ASCII case finds one of its needles, on random needles and texts made of their
    /// pieces in random case (a small alphabet with caseless bytes, so that partial matches,
    /// shared anchors and shared pairs abound; texts up to a few hundred bytes, so that both
    /// the vector searches and the portable ones for short texts run).
    #[test]
    fn folded_sets_find_exactly_what_their_needles_find() {
        let mut rng = vmext_test_support::SplitMix64(7);
        let alphabet = b"ACEW/.SR7x";
        let mut pick = |n: u64| rng.below(n) as usize;
        let brute = |needle: &str, text: &[u8]| {
            let upper = needle.to_ascii_uppercase();
            text.windows(upper.len())
                .any(|w| w.eq_ignore_ascii_case(upper.as_bytes()))
        };
        for _ in 0..3_000 {
            let count = 1 + pick(6);
            let literals: Vec<String> = (0..count)
                .map(|_| {
                    // Now and then longer than a factor search's 64-byte tail.
                    let len = 1 + if pick(8) == 0 { pick(90) } else { pick(30) };
                    (0..len)
                        .map(|_| char::from(alphabet[pick(alphabet.len() as u64)]))
                        .collect()
                })
                .collect();
            let refs: Vec<&str> = literals.iter().map(String::as_str).collect();
            let set = folded_set(&refs);
            let mut text = Vec::new();
            for _ in 0..pick(24) {
                let piece = &literals[pick(literals.len() as u64)];
                let cut = pick(piece.len() as u64 + 1);
                for &b in &piece.as_bytes()[..cut] {
                    text.push(if pick(2) == 0 {
                        b.to_ascii_lowercase()
                    } else {
                        b
                    });
                }
                text.push(alphabet[pick(alphabet.len() as u64)]);
            }
            let shown = String::from_utf8_lossy(&text);
            for literal in &refs {
                let anchored = Needle::case_insensitive(literal);
                let mut paired = anchored.clone();
                paired.choose_pair();
                for needle in [anchored, paired] {
                    assert_eq!(
                        needle.found_in(&text),
                        brute(literal, &text),
                        "{literal:?} in {shown:?} (pair: {})",
                        needle.pair.is_some()
                    );
                }
            }
            let expected = refs.iter().any(|l| brute(l, &text));
            assert_eq!(set.found_in(&text), expected, "{refs:?} in {shown:?}");
            assert_eq!(
                set.factors.found_in(&set.needles, &text),
                expected,
                "factor search: {refs:?} in {shown:?}"
            );
        }
    }

    fn verbatim(_: &str) -> Presence {
        Presence::Verbatim
    }

    fn req(query: &str) -> Requirement {
        Requirement::derive(&crate::parse(query).unwrap(), &verbatim)
    }

    #[test]
    fn derives_and_factors_literals() {
        let r = req("a:X and (b:Y or b:Z) and not c:W and d:*Q*R*");
        assert_eq!(r.needles().len(), 5);
        assert!(r.admits(br#"{"a":"X","b":"Z","d":"QR"}"#));
        assert!(!r.admits(br#"{"a":"X","b":"Z","d":"Q"}"#));
        assert!(!r.admits(br#"{"a":"x","b":"Z","d":"QR"}"#));
        let shapes = Requirement::any_shape(vec![req("a:X and b:Y"), req("a:X and c:Z")]);
        assert!(matches!(shapes, Requirement::All(_)));
    }

    #[test]
    fn escaped_spellings_are_admitted() {
        let r = req(r#"a:"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE""#);
        assert!(r.admits(br#"{"a":"MICROSOFT.COMPUTE\/VIRTUALMACHINES\/EXTENSIONS\/\u0057RITE"}"#));
        assert!(r.admits(br#"{"a":"\u004dICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE"}"#));
        assert!(!r.admits(br#"{"a":"MICROSOFT.COMPUTE\/VIRTUALMACHINES\/EXTENSIONS\/DELETE"}"#));
        let quote = req(r#"a:"say \"hi\"\n""#);
        assert!(quote.admits(br#"{"a":"say \u0022hi\"\u000a"}"#));
        assert!(quote.admits(br#"{"a":"say \"hi\"\n"}"#));
        let astral = req("a:\u{1F600}");
        assert!(astral.admits(br#"{"a":"\ud83d\ude00"}"#));
    }

    /// Told what validation found of a text's escapes, the prefilter answers as it does when it
    /// searches for them itself; told wrongly that there are none, it misses escaped spellings.
    #[test]
    fn validated_text_is_admitted_as_unvalidated_text_is() {
        let r = req(r#"a:"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE" and b:"say \"hi\"""#);
        let texts: [&[u8]; 6] = [
            br#"{"a":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","b":"say \"hi\""}"#,
            br#"{"a":"MICROSOFT.COMPUTE\/VIRTUALMACHINES/EXTENSIONS/WRITE","b":"say \"hi\""}"#,
            br#"{"a":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/\u0057RITE","b":"say \u0022hi\""}"#,
            br#"{"a":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","b":"say \\"}"#,
            br#"{"a":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/DELETE","b":"say \"hi\""}"#,
            br#"{"a":"x","b":"\n"}"#,
        ];
        for text in texts {
            let escapes = vmext_json::validate_escapes(text).unwrap();
            assert_eq!(
                r.admits_validated(text, escapes),
                r.admits(text),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let escaped = texts[2];
        assert!(r.admits(escaped));
        assert!(!r.admits_validated(escaped, vmext_json::Escapes::QuoteAndBackslashOnly));
    }

    /// The wasm32 search agrees with memchr's on every position of a needle and on misses.
    #[test]
    fn horspool_agrees_with_memmem() {
        let texts: [&[u8]; 4] = [
            b"",
            b"abcabcabd MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE xx",
            b"aaaaaaaaaaaaaaaaaaaaaaab",
            &[200u8; 300],
        ];
        let needles: [&[u8]; 6] = [
            b"a",
            b"abd",
            b"aab",
            b"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE",
            &[200u8; 280],
            b"zz",
        ];
        for text in texts {
            for needle in needles {
                let h = Horspool::new(needle, false);
                assert_eq!(
                    h.find(needle, text),
                    memmem::find(text, needle).is_some(),
                    "{needle:?} in {text:?}"
                );
                // At every offset where it fits.
                if needle.len() > text.len() {
                    continue;
                }
                for at in 0..=text.len() - needle.len() {
                    let mut t = text.to_vec();
                    t[at..at + needle.len()].copy_from_slice(needle);
                    assert!(h.find(needle, &t));
                }
            }
        }
    }

    /// Folded needles admit any ASCII case and any escaped spelling, and nothing else.
    #[test]
    fn case_insensitive_needles() {
        let folded = |query: &str| {
            Requirement::derive(&crate::parse(query).unwrap(), &|_: &str| {
                Presence::CaseInsensitive
            })
        };
        let r = folded(r#"a:"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE""#);
        assert!(r.admits(br#"{"a":"microsoft.compute/virtualmachines/extensions/write"}"#));
        assert!(r.admits(br#"{"a":"Microsoft.Compute\/virtualMachines\/extensions\/write"}"#));
        assert!(!r.admits(br#"{"a":"microsoft.compute/virtualmachines/extensions/delete"}"#));
        // Only ASCII letters fold: a non-ASCII letter is not its ASCII look-alike.
        let r = folded("a:*KELVIN*");
        assert!(r.admits(b"{\"a\":\"kelvin\"}"));
        assert!(!r.admits("{\"a\":\"\u{212A}ELVIN\"}".as_bytes()));
        // Every offset, every case, both searches agree with a folded memmem.
        let needle = b"EXTENSIONS/DSC";
        let h = Horspool::new(needle, true);
        for at in 0..40 {
            let mut text = vec![b'x'; 60];
            text[at..at + needle.len()].copy_from_slice(b"eXtEnSiOnS/dSc");
            assert!(h.find_folded(needle, &text), "{at}");
            assert!(
                find_folded_anchored(needle, rarest_byte(needle), &text),
                "{at}"
            );
            text[at + 3] = b'#';
            assert!(!h.find_folded(needle, &text), "{at}");
            assert!(
                !find_folded_anchored(needle, rarest_byte(needle), &text),
                "{at}"
            );
        }
        // Every anchor, every offset, against a folded search by brute force.
        let texts: [&[u8]; 3] = [
            b"xx microsoft.compute/virtualmachines/runcommand/action yy",
            b"MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMANDS/WRITE",
            b"rUnCoMmAnD/aCtIoN",
        ];
        let needles: [&[u8]; 4] = [b"RUNCOMMAND/ACTION", b"M", b"ACTION", b"COMPUTE/V"];
        for text in texts {
            for needle in needles {
                let brute = text
                    .windows(needle.len())
                    .any(|w| w.eq_ignore_ascii_case(needle));
                for anchor in 0..needle.len() {
                    assert_eq!(find_folded_anchored(needle, anchor, text), brute);
                }
            }
        }
    }

    /// A disjunction whose alternatives each need folded literals first gets one guard of all
    /// of them when that takes fewer passes: the hardened profile's shape, four extension-write
    /// names (with a handler) or five Run Command names, is two passes for a record that holds
    /// none, not three. What it admits is what the unguarded requirement admits.
    #[test]
    fn a_guard_searches_the_alternatives_first_literals_together() {
        let [ext @ .., _, _, _, _, _] = OPERATIONS;
        let run = &OPERATIONS[4..];
        let list = |names: &[&str]| {
            let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            quoted.join(" or ")
        };
        let query = format!(
            "(op:({}) and handler:*CUSTOMSCRIPT*) or op:({})",
            list(&ext),
            list(run)
        );
        let node = crate::parse(&query).unwrap();
        let folded = |_: &str| Presence::CaseInsensitive;
        let guarded = Requirement::derive(&node, &folded);
        let Requirement::Guarded { guard, then } = &guarded else {
            panic!("no guard: {guarded:?}");
        };
        assert_eq!(guard.needles().len(), 9);
        if !cfg!(all(target_arch = "wasm32", not(target_feature = "simd128"))) {
            assert_eq!(guard.pass_count(), 2);
        }
        let unguarded = (**then).clone();
        assert!(matches!(unguarded, Requirement::AnyOf(_)));
        let texts = [
            r#"{"op":"microsoft.compute/virtualmachines/runcommand/action"}"#.to_owned(),
            r#"{"op":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","h":"customscript"}"#
                .to_owned(),
            r#"{"op":"MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE","h":"other"}"#.to_owned(),
            r#"{"op":"MICROSOFT.COMPUTE/VIRTUALMACHINES/WRITE","h":"customscript"}"#.to_owned(),
            r#"{"op":"Microsoft.HybridCompute\/machines\/runCommands\/write"}"#.to_owned(),
            r#"{"op":"Microsoft.HybridCompute\u002fmachines/runCommands/writ"}"#.to_owned(),
        ];
        let admitted: Vec<bool> = texts.iter().map(|t| guarded.admits(t.as_bytes())).collect();
        assert_eq!(admitted, [true, true, false, false, true, false]);
        for t in &texts {
            assert_eq!(
                guarded.admits(t.as_bytes()),
                unguarded.admits(t.as_bytes()),
                "{t}"
            );
        }
        // Deriving per shape and combining puts the guard back once, not a guard in a guard.
        let both = Requirement::any_shape(vec![guarded.clone(), guarded]);
        let Requirement::Guarded { then, .. } = &both else {
            panic!("no guard: {both:?}");
        };
        assert!(!format!("{then:?}").contains("Guarded"));
        // The literals listed are the query's, each once.
        assert_eq!(both.needles().len(), 10);
    }

    /// Deriving is near-linear in the query: 100,000 `or`-ed values (and 40,000 factorable
    /// alternatives, as many as the size bound admits) finish far inside a deadline two orders of magnitude above what they take
    /// in a debug build. Comparing each literal with every earlier one took minutes here. (How
    /// fast it is, is the criterion benchmark's business; this only catches a quadratic pass.)
    #[test]
    fn deriving_is_near_linear_in_the_query() {
        let values: Vec<String> = (0..100_000).map(|i| format!("v{i}")).collect();
        let list = format!("a:({})", values.join(" or "));
        let factored: String = (0..40_000)
            .map(|i| format!("(a:x and b:y{i})"))
            .collect::<Vec<_>>()
            .join(" or ");
        // Folded values made of caseless bytes, as many as fit in the query bound: each has many
        // byte pairs to choose passes from.
        let caseless: Vec<String> = (0..40_000).map(|i| format!("\"/{i}/.{i}\"")).collect();
        let folded_list = format!("a:({})", caseless.join(" or "));
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let list = req(&list);
            let factored = req(&factored);
            let folded = Requirement::derive(&crate::parse(&folded_list).unwrap(), &|_: &str| {
                Presence::CaseInsensitive
            });
            let _ = done.send((list.needles().len(), factored, folded.needles().len()));
        });
        let (needles, factored, folded) = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("deriving a 100,000-term requirement took over a minute");
        assert_eq!(needles, 100_000);
        assert_eq!(folded, 40_000);
        // `x` is required once, outside the disjunction of the `y`s.
        assert!(matches!(&factored, Requirement::All(items) if items.len() == 2));
        assert!(factored.admits(br#"{"a":"x","b":"y39999"}"#));
        assert!(!factored.admits(br#"{"a":"x","b":"z"}"#));
    }

    /// Repeated wildcard pieces make one needle, and no searcher is built for the copies: half a
    /// million copies of `*x` once cost hundreds of megabytes of searchers before the duplicates
    /// were merged, enough to exhaust the component's memory cap (see the host's test of the
    /// query-size bound, which fails without this).
    #[test]
    fn repeated_wildcard_pieces_make_one_needle() {
        let stars = format!("a:{}", "*x".repeat(500_000));
        let r = req(&stars);
        assert_eq!(r.needles(), vec!["x"]);
        let r = req("a:*ab*cd*ab*cd*ef*");
        let mut needles = r.needles();
        needles.sort_unstable();
        assert_eq!(needles, vec!["ab", "cd", "ef"]);
    }

    #[test]
    fn absent_fields_make_a_shape_impossible() {
        let r = Requirement::derive(&crate::parse("a:x or b:y").unwrap(), &|f: &str| {
            if f == "a" {
                Presence::Absent
            } else {
                Presence::Verbatim
            }
        });
        assert_eq!(r.needles(), vec!["y"]);
        let n = Requirement::derive(&crate::parse("not a:x").unwrap(), &|_: &str| {
            Presence::Absent
        });
        assert_eq!(n, Requirement::Anything);
    }

    /// Evaluates terms directly, by brute force: what [`Requirement::from_terms`] must agree
    /// with on text without escapes (which is its own canonical spelling). Returns the verdict
    /// and how many terms it read.
    fn brute(terms: &[Term], text: &[u8]) -> (bool, usize) {
        match &terms[0] {
            Term::Anything => (true, 1),
            Term::Nothing => (false, 1),
            Term::Contains {
                literal,
                case_insensitive,
            } => {
                let l = literal.as_bytes();
                let found = l.is_empty()
                    || text.windows(l.len()).any(|w| {
                        if *case_insensitive {
                            w.eq_ignore_ascii_case(l)
                        } else {
                            w == l
                        }
                    });
                (found, 1)
            }
            Term::All(n) | Term::AnyOf(n) => {
                let all = matches!(terms[0], Term::All(_));
                let mut read = 1;
                let mut verdict = all;
                for _ in 0..*n {
                    let (v, r) = brute(&terms[read..], text);
                    read += r;
                    verdict = if all { verdict && v } else { verdict || v };
                }
                (verdict, read)
            }
        }
    }

    /// Random well-formed terms over a small alphabet, `depth` operators deep at most.
    fn random_terms(rng: &mut vmext_test_support::SplitMix64, depth: u32, out: &mut Vec<Term>) {
        let alphabet = b"aBc/.D";
        match rng.below(if depth == 0 { 3 } else { 5 }) {
            0 => out.push(if rng.below(6) == 0 {
                Term::Anything
            } else {
                Term::Nothing
            }),
            1 | 2 => {
                // Now and then the empty literal, which every text contains.
                let len = rng.below(5) as usize;
                let literal = (0..len)
                    .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
                    .collect();
                out.push(Term::Contains {
                    literal,
                    case_insensitive: rng.below(2) == 0,
                });
            }
            op => {
                let n = rng.below(4) as u32;
                out.push(if op == 3 {
                    Term::All(n)
                } else {
                    Term::AnyOf(n)
                });
                for _ in 0..n {
                    random_terms(rng, depth - 1, out);
                }
            }
        }
    }

    /// A requirement rebuilt from terms admits exactly the texts the terms describe, and a
    /// requirement written out as terms and rebuilt admits what it admitted: on random
    /// formulas (with the guards and folded sets simplification makes of them) and texts.
    #[test]
    fn requirements_cross_as_terms_and_admit_the_same_texts() {
        let mut rng = vmext_test_support::SplitMix64(19);
        let alphabet = b"aAbBcC/.dD";
        for _ in 0..4_000 {
            let mut terms = Vec::new();
            random_terms(&mut rng, 4, &mut terms);
            let built = Requirement::from_terms(&terms).unwrap();
            let again = Requirement::from_terms(&built.terms()).unwrap();
            for _ in 0..8 {
                let len = rng.below(24) as usize;
                let text: Vec<u8> = (0..len)
                    .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize])
                    .collect();
                let expected = brute(&terms, &text).0;
                let shown = String::from_utf8_lossy(&text);
                assert_eq!(built.admits(&text), expected, "{terms:?} on {shown}");
                assert_eq!(again.admits(&text), expected, "{built:?} on {shown}");
            }
        }
    }

    /// A requirement's terms survive the crossing: rebuilding gives the same terms again.
    #[test]
    fn a_derived_requirement_rebuilds_to_its_own_terms() {
        let query = crate::parse(
            r#"event.dataset: "azure.activitylogs" and azure.activitylogs.operation_name: (
                "MICROSOFT.COMPUTE/VIRTUALMACHINES/EXTENSIONS/WRITE" or
                "MICROSOFT.COMPUTE/VIRTUALMACHINES/RUNCOMMAND/ACTION") and
                (event.outcome: success or azure.resource.id: *CUSTOMSCRIPT*)"#,
        )
        .unwrap();
        for presence in [Presence::Verbatim, Presence::CaseInsensitive] {
            let derived = Requirement::derive(&query, &|_: &str| presence);
            let rebuilt = Requirement::from_terms(&derived.terms()).unwrap();
            assert_eq!(rebuilt.terms(), derived.terms());
            assert_eq!(rebuilt, derived);
        }
    }

    #[test]
    fn malformed_terms_are_errors() {
        let contains = Term::Contains {
            literal: "x".into(),
            case_insensitive: false,
        };
        assert_eq!(Requirement::from_terms(&[]), Err(TermsError::Truncated));
        assert_eq!(
            Requirement::from_terms(&[Term::All(2), contains.clone()]),
            Err(TermsError::Truncated)
        );
        assert_eq!(
            Requirement::from_terms(&[Term::AnyOf(u32::MAX), contains.clone()]),
            Err(TermsError::Truncated)
        );
        assert_eq!(
            Requirement::from_terms(&[contains.clone(), Term::Nothing]),
            Err(TermsError::Trailing(1))
        );
        let deep: Vec<Term> = std::iter::repeat_n(Term::All(1), MAX_TERM_DEPTH + 1)
            .chain([contains.clone()])
            .collect();
        assert_eq!(Requirement::from_terms(&deep), Err(TermsError::TooDeep));
        let deep_enough = &deep[1..];
        assert!(Requirement::from_terms(deep_enough).is_ok());
        let many = vec![Term::Nothing; MAX_TERMS + 1];
        assert_eq!(Requirement::from_terms(&many), Err(TermsError::TooMany));
        assert_eq!(
            Requirement::from_terms(&[Term::All(0)]),
            Ok(Requirement::Anything)
        );
        assert_eq!(
            Requirement::from_terms(&[Term::AnyOf(0)]),
            Ok(Requirement::Nothing)
        );
    }
}
