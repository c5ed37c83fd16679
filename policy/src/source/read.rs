//! Reading YAML and JSON text into JSON values, taking the position of every node in the same
//! pass.
//!
//! Manifests and policy documents are multi-document YAML or JSON. apart turns each document
//! into a `serde_json::Value` (the form the Kubernetes API and the module work with) and, while
//! it reads, records where every node's key and value are written ([`Positions`]), so that
//! every error and finding names a line and the editor can change a node in place without
//! reading the text again. Documents are read one at a time ([`documents`]): a caller that
//! handles each document before asking for the next holds one document in memory, whatever
//! the size of the file.
//!
//! Scalars are resolved with the YAML 1.2 core schema, as Kubernetes' YAML reader does for the
//! values that matter here. JSON text is read by a small JSON front end with JSON's own
//! scalar rules (numbers and strings are decoded by `serde_json`); text that starts like JSON
//! but is not (a YAML flow mapping such as `{apiVersion: v1, kind: Pod}`) is read as YAML.
//! Limits protect against hostile input: nesting deeper than [`MAX_DEPTH`] and alias
//! expansion beyond [`MAX_ALIAS_NODES`] are errors, not crashes.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use saphyr_parser::{Event as YamlEvent, Parser, ScalarStyle, StrInput};
use serde_json::{Map, Number, Value};

use crate::source::path::{JsonPath, Segment};

/// Deepest nesting accepted (serde_json's own limit, so YAML and JSON agree).
pub const MAX_DEPTH: usize = 128;
/// Most nodes alias expansion may produce in one document (stops "billion laughs").
pub const MAX_ALIAS_NODES: usize = 1_000_000;

/// A position in source text: 1-based line and column, 0-based byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Byte offset into the text.
    pub offset: usize,
}

/// Where a node's text starts and ends (end exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First character of the node (its anchor or tag included).
    pub start: Position,
    /// Just past the node's last character.
    pub end: Position,
}

/// Where one node of a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSpan {
    /// The node's key, when it is a mapping member.
    pub key: Option<Span>,
    /// The node's value.
    pub value: Span,
}

impl NodeSpan {
    /// Where a message about the node points: its key when it has one (`labelSelector:`, not
    /// the selector's first line), else its value.
    pub fn start(&self) -> Position {
        self.key.map_or(self.value.start, |k| k.start)
    }

    /// From the key (or the value, for a sequence item or the root) to the value's end.
    pub fn whole(&self) -> Span {
        Span {
            start: self.start(),
            end: self.value.end,
        }
    }
}

/// Malformed text: what the parser expected, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", position.line, position.column)]
pub struct SyntaxError {
    /// Where the problem was found.
    pub position: Position,
    /// What is wrong.
    pub message: String,
}

/// A node's path, hashed step by step: the key of [`Positions`]. FNV-1a over a tag byte and
/// the step (names length-prefixed), so that no two distinct paths share a byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PathKey(u64);

impl PathKey {
    const ROOT: PathKey = PathKey(0xcbf2_9ce4_8422_2325);

    fn mix(mut self, bytes: &[u8]) -> Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    fn name(self, name: &str) -> Self {
        let len = u64::try_from(name.len()).unwrap_or(u64::MAX);
        self.mix(&[1]).mix(&len.to_le_bytes()).mix(name.as_bytes())
    }

    fn index(self, index: usize) -> Self {
        let index = u64::try_from(index).unwrap_or(u64::MAX);
        self.mix(&[2]).mix(&index.to_le_bytes())
    }

    fn step(self, segment: &Segment) -> Self {
        match segment {
            Segment::Name(n) => self.name(n),
            Segment::Index(i) => self.index(*i),
        }
    }
}

/// The keys are hashes already; hashing them again would only cost time.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Where every node of one document is written, found by JSON path.
///
/// Nodes that have no text of their own (members copied in by a merge key, the inside of an
/// aliased collection) are not here; [`Positions::nearest`] answers with the closest node that
/// is.
#[derive(Debug, Clone, Default)]
pub struct Positions {
    spans: HashMap<PathKey, NodeSpan, BuildHasherDefault<KeyHasher>>,
}

impl Positions {
    /// The node at `path`, when it is written in the text.
    pub fn get(&self, path: &JsonPath) -> Option<NodeSpan> {
        let key = path.segments().iter().fold(PathKey::ROOT, |k, s| k.step(s));
        self.spans.get(&key).copied()
    }

    /// The node at `path`, or the deepest of its ancestors that is written in the text, with
    /// how many of the path's segments it covers.
    pub fn nearest(&self, path: &JsonPath) -> Option<(NodeSpan, usize)> {
        let mut keys = Vec::with_capacity(path.segments().len() + 1);
        let mut key = PathKey::ROOT;
        keys.push(key);
        for s in path.segments() {
            key = key.step(s);
            keys.push(key);
        }
        keys.iter()
            .enumerate()
            .rev()
            .find_map(|(depth, k)| self.spans.get(k).map(|span| (*span, depth)))
    }

    /// The root node.
    pub fn root(&self) -> Option<NodeSpan> {
        self.spans.get(&PathKey::ROOT).copied()
    }

    fn insert(&mut self, key: PathKey, span: NodeSpan) {
        self.spans.insert(key, span);
    }

    /// Moves every position (read from a copy of part of the text) to the whole text's.
    fn shift(&mut self, shift: &dyn Fn(&mut Position)) {
        for span in self.spans.values_mut() {
            if let Some(key) = &mut span.key {
                shift(&mut key.start);
                shift(&mut key.end);
            }
            shift(&mut span.value.start);
            shift(&mut span.value.end);
        }
    }
}

/// One document of a file.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's content.
    pub value: Value,
    /// Which document of the file it is (0-based, counting empty ones).
    pub index: usize,
    /// Where the document's content starts.
    pub start: Position,
    /// Where each of its nodes is.
    pub positions: Positions,
}

impl Document {
    /// The byte range of the lines the document's content is written on, from the start of
    /// its first line to the end of its last (line break excluded): the text an in-place edit
    /// of this document rewrites. Comments before and after the content stay outside.
    pub fn lines(&self, text: &str) -> Range<usize> {
        let (start, end) = self
            .positions
            .root()
            .map_or((self.start.offset, self.start.offset), |r| {
                (r.value.start.offset, r.value.end.offset)
            });
        let line_start = text
            .get(..start)
            .and_then(|s| s.rfind('\n'))
            .map_or(0, |i| i + 1);
        // A block collection ends just past its last scalar; the line goes on to its break
        // (a comment after the last value belongs to the document's last line).
        let line_end = text
            .get(end..)
            .and_then(|s| s.find('\n'))
            .map_or(text.len(), |i| end + i);
        let line_end = if line_end > end && text.as_bytes().get(line_end - 1) == Some(&b'\r') {
            line_end - 1
        } else {
            line_end
        };
        line_start..line_end.max(line_start)
    }
}

/// Is this text JSON rather than YAML, at first sight? (Its first non-blank character opens
/// an object or an array.) Text that starts so but is YAML (a flow mapping) is still read as
/// YAML by [`documents`].
pub fn looks_like_json(text: &str) -> bool {
    matches!(
        text.trim_start_matches('\u{FEFF}')
            .trim_start()
            .as_bytes()
            .first(),
        Some(b'{' | b'[')
    )
}

/// Reads every document of a YAML or JSON text. Empty documents (`---` with nothing after it)
/// are skipped.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, SyntaxError> {
    documents(text).collect()
}

/// Reads one document (the first) of a YAML or JSON text, for inputs that hold one.
pub fn parse_one(text: &str) -> Result<Option<Document>, SyntaxError> {
    documents(text).next().transpose()
}

/// The documents of a YAML or JSON text, read one at a time (empty ones skipped). After a
/// syntax error the iterator ends.
///
/// YAML text is cut into documents at the lines that start with a document marker (`---`
/// or `...`, which YAML forbids at the start of a line inside any content), and each is
/// read on its own: an error is reported in the document it is in, and a document's reading
/// costs nothing of the others'.
pub fn documents(text: &str) -> Documents<'_> {
    chunk_documents(
        text,
        &Chunk {
            range: 0..text.len(),
            line: 1,
        },
    )
}

/// The documents of one part of a text ([`chunks`]), with positions in the whole text.
pub fn chunk_documents<'a>(text: &'a str, chunk: &Chunk) -> Documents<'a> {
    let own = text.get(chunk.range.clone()).unwrap_or_default();
    let mode = if looks_like_json(own) {
        Mode::Json(Builder::new(
            Source::Json(JsonEvents::new(text, chunk.clone())),
            0,
        ))
    } else {
        Mode::Yaml(None)
    };
    Documents {
        text,
        chunks: Chunks::new(text, chunk),
        mode,
        pending: std::collections::VecDeque::new(),
        index: 0,
        yielded: false,
        done: false,
    }
}

/// The parts of a text that each hold at most one YAML document: cut at the lines that start
/// with a document marker (`---` or `...` followed by a blank or the line's end, which YAML
/// forbids at the start of a line inside any content), directive lines going with the
/// document they introduce. A JSON text is one part. Parts can be read on their own, in any
/// order ([`chunk_documents`]).
pub fn chunks(text: &str) -> Chunks<'_> {
    Chunks::new(
        text,
        &Chunk {
            range: 0..text.len(),
            line: 1,
        },
    )
}

/// The iterator [`documents`] returns.
pub struct Documents<'a> {
    text: &'a str,
    chunks: Chunks<'a>,
    mode: Mode<'a>,
    /// Documents of a chunk read ahead (one whose tabs had to be read as spaces).
    pending: std::collections::VecDeque<Document>,
    /// Documents read so far, empty ones included.
    index: usize,
    yielded: bool,
    done: bool,
}

enum Mode<'a> {
    Json(Builder<'a>),
    /// The reader of the current YAML chunk.
    Yaml(Option<Builder<'a>>),
}

/// What saphyr says of a tab after a mapping's `:`. YAML allows tabs as separation inside a
/// line (YAML 1.2 §6.2, and kustomize and kubectl read them); the parser refuses them there.
const TAB_AFTER_COLON: &str = "':' must be followed by a valid YAML whitespace";

impl Documents<'_> {
    /// The next event of reading: a document, an empty document, the end, or an error.
    fn step(&mut self) -> Result<Option<Option<Document>>, SyntaxError> {
        match &mut self.mode {
            Mode::Json(builder) => match builder.next_document() {
                Err(_) if !self.yielded && builder.source.foreign() => {
                    // `{apiVersion: v1, kind: Pod}` starts like JSON and is YAML.
                    self.mode = Mode::Yaml(None);
                    Ok(Some(None))
                }
                other => other,
            },
            Mode::Yaml(current) => {
                let builder = match current {
                    Some(b) => b,
                    None => {
                        let Some(chunk) = self.chunks.next() else {
                            return Ok(None);
                        };
                        current.insert(Builder::new(
                            Source::Yaml(Box::new(YamlEvents::new(self.text, chunk))),
                            self.index,
                        ))
                    }
                };
                match builder.next_document() {
                    Ok(None) => {
                        self.index = builder.index;
                        *current = None;
                        // The chunk is done: go on with the next one.
                        Ok(Some(None))
                    }
                    Err(e) if e.message == TAB_AFTER_COLON => {
                        let chunk = builder.source.chunk();
                        let index = builder.index;
                        *current = None;
                        let (documents, next) = read_tabbed_chunk(self.text, chunk, index)?;
                        self.index = next;
                        self.pending.extend(documents);
                        Ok(Some(None))
                    }
                    other => other,
                }
            }
        }
    }
}

impl Iterator for Documents<'_> {
    type Item = Result<Document, SyntaxError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(document) = self.pending.pop_front() {
                self.yielded = true;
                return Some(Ok(document));
            }
            if self.done {
                return None;
            }
            match self.step() {
                Ok(None) => self.done = true,
                Ok(Some(None)) => {}
                Ok(Some(Some(document))) => {
                    self.yielded = true;
                    return Some(Ok(document));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Reads a chunk whose mapping values are separated from their `:` by tabs: each tab the
/// parser refuses there is read as a space (same length, so every position stays right) and
/// the chunk is read again, until it reads or fails for another reason.
fn read_tabbed_chunk(
    text: &str,
    chunk: Chunk,
    mut index: usize,
) -> Result<(Vec<Document>, usize), SyntaxError> {
    let Some(original) = text.get(chunk.range.clone()) else {
        return Ok((Vec::new(), index));
    };
    let mut patched = original.to_owned();
    // Each round fixes at least one tab; a chunk has no more tabs than bytes.
    for _ in 0..=original.len() {
        let local = Chunk {
            range: 0..patched.len(),
            line: 1,
        };
        let mut builder = Builder::new(
            Source::Yaml(Box::new(YamlEvents::new(&patched, local))),
            index,
        );
        let mut documents = Vec::new();
        let failed = loop {
            match builder.next_document() {
                Ok(None) => break None,
                Ok(Some(document)) => documents.extend(document),
                Err(e) => break Some(e),
            }
        };
        let Some(error) = failed else {
            index = builder.index;
            let shift = |p: &mut Position| {
                p.offset += chunk.range.start;
                p.line += chunk.line - 1;
            };
            for d in &mut documents {
                shift(&mut d.start);
                d.positions.shift(&shift);
            }
            return Ok((documents, index));
        };
        let at = error.position.offset;
        let tabs_before = patched
            .get(..at)
            .map_or(0, |s| s.len() - s.trim_end_matches('\t').len());
        if error.message != TAB_AFTER_COLON || tabs_before == 0 {
            return Err(SyntaxError {
                position: Position {
                    line: error.position.line + chunk.line - 1,
                    column: error.position.column,
                    offset: error.position.offset + chunk.range.start,
                },
                message: error.message,
            });
        }
        patched.replace_range(at - tabs_before..at, &" ".repeat(tabs_before));
    }
    Ok((Vec::new(), index))
}

/// A YAML document's share of a text ([`chunks`]): from a line that starts with a document
/// marker (or the text's start) to the next such line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its bytes in the text.
    pub range: Range<usize>,
    /// The 1-based line it starts on.
    pub line: usize,
}

/// The iterator [`chunks`] returns.
pub struct Chunks<'a> {
    text: &'a str,
    offset: usize,
    end: usize,
    line: usize,
}

impl<'a> Chunks<'a> {
    fn new(text: &'a str, within: &Chunk) -> Self {
        Self {
            text,
            offset: within.range.start,
            end: within.range.end.min(text.len()),
            line: within.line,
        }
    }
}

/// Does the line starting at `offset` start with a document marker?
fn is_marker_line(text: &str, offset: usize) -> bool {
    let bytes = text.as_bytes();
    let marker = bytes.get(offset..offset + 3);
    (marker == Some(b"---") || marker == Some(b"...")) && {
        matches!(
            bytes.get(offset + 3),
            None | Some(b' ' | b'\t' | b'\n' | b'\r')
        )
    }
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        let bytes = self.text.as_bytes();
        let end = self.end;
        if self.offset >= end {
            return None;
        }
        let start = self.offset;
        let start_line = self.line;
        let mut line_start = start;
        let mut line = start_line;
        // The chunk's first line is its own, marker or not.
        let mut first = true;
        // Where a run of directive lines just before a marker began.
        let mut directives: Option<(usize, usize)> = None;
        loop {
            if !first && is_marker_line(self.text, line_start) {
                let (cut, cut_line) = directives.unwrap_or((line_start, line));
                if cut > start {
                    self.offset = cut;
                    self.line = cut_line;
                    return Some(Chunk {
                        range: start..cut,
                        line: start_line,
                    });
                }
            }
            first = false;
            if bytes.get(line_start) == Some(&b'%') {
                directives.get_or_insert((line_start, line));
            } else if !matches!(bytes.get(line_start), Some(b'#' | b'\n' | b'\r') | None) {
                directives = None;
            }
            let next_line = self
                .text
                .get(line_start..end)
                .and_then(|s| s.find('\n'))
                .map(|i| line_start + i + 1)
                .filter(|n| *n < end);
            match next_line {
                Some(n) => {
                    line_start = n;
                    line += 1;
                }
                None => {
                    self.offset = end;
                    self.line = line;
                    return Some(Chunk {
                        range: start..end,
                        line: start_line,
                    });
                }
            }
        }
    }
}

/// Converts the character indexes the YAML parser reports into byte offsets, walking from the
/// last conversion (positions arrive almost in order, so the walk is short): no table of the
/// whole text's characters is built.
struct CharCursor<'a> {
    text: &'a str,
    ascii: bool,
    chars: usize,
    bytes: usize,
}

impl<'a> CharCursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            ascii: text.is_ascii(),
            chars: 0,
            bytes: 0,
        }
    }

    fn byte_offset(&mut self, char_index: usize) -> usize {
        if self.ascii {
            return char_index.min(self.text.len());
        }
        let bytes = self.text.as_bytes();
        while self.chars < char_index && self.bytes < bytes.len() {
            self.bytes += 1;
            while self.bytes < bytes.len() && !self.text.is_char_boundary(self.bytes) {
                self.bytes += 1;
            }
            self.chars += 1;
        }
        while self.chars > char_index && self.bytes > 0 {
            self.bytes -= 1;
            while self.bytes > 0 && !self.text.is_char_boundary(self.bytes) {
                self.bytes -= 1;
            }
            self.chars -= 1;
        }
        self.bytes
    }
}

/// What an event source says, whatever the syntax.
enum Event<'t> {
    DocumentStart,
    DocumentEnd,
    StreamEnd,
    MappingStart {
        anchor: usize,
    },
    SequenceStart {
        anchor: usize,
    },
    /// The end of a collection; `end` is where its text ends when the source knows it (a
    /// closing bracket), otherwise it ends with its last child.
    CollectionEnd {
        end: Option<Position>,
    },
    /// A YAML scalar, resolved by the core schema unless it is a key.
    Scalar {
        text: Cow<'t, str>,
        style: ScalarStyle,
        anchor: usize,
        tag: Option<String>,
    },
    /// A scalar whose value is already decided (JSON).
    Value(Value),
    Alias(usize),
    /// Events without meaning here.
    Nothing,
}

/// The YAML parser over one chunk of the text, as an event source whose positions are the
/// whole text's.
struct YamlEvents<'a> {
    parser: Parser<'a, StrInput<'a>>,
    cursor: CharCursor<'a>,
    /// The chunk's text.
    text: &'a str,
    chunk: Chunk,
}

impl<'a> YamlEvents<'a> {
    fn new(whole: &'a str, chunk: Chunk) -> Self {
        let text = whole.get(chunk.range.clone()).unwrap_or_default();
        Self {
            parser: Parser::new_from_str(text),
            cursor: CharCursor::new(text),
            text,
            chunk,
        }
    }

    fn position(&mut self, marker: &saphyr_parser::Marker) -> Position {
        Position {
            line: marker.line() + self.chunk.line - 1,
            column: marker.col() + 1,
            offset: self.cursor.byte_offset(marker.index()) + self.chunk.range.start,
        }
    }

    fn next(&mut self) -> Option<Result<(Event<'a>, Span), SyntaxError>> {
        let event = self.parser.next_event()?;
        Some(match event {
            Err(e) => {
                let position = self.position(e.marker());
                Err(SyntaxError {
                    position,
                    message: e.info().to_owned(),
                })
            }
            Ok((event, span)) => {
                let span = Span {
                    start: self.position(&span.start),
                    end: self.position(&span.end),
                };
                let event = match event {
                    YamlEvent::StreamStart | YamlEvent::Nothing => Event::Nothing,
                    YamlEvent::StreamEnd => Event::StreamEnd,
                    YamlEvent::DocumentStart(_) => Event::DocumentStart,
                    YamlEvent::DocumentEnd => Event::DocumentEnd,
                    YamlEvent::Alias(id) => Event::Alias(id),
                    YamlEvent::Scalar(text, style, anchor, tag) => Event::Scalar {
                        text,
                        style,
                        anchor,
                        tag: tag.map(|t| t.suffix.clone()),
                    },
                    YamlEvent::MappingStart(anchor, _) => Event::MappingStart { anchor },
                    YamlEvent::SequenceStart(anchor, _) => Event::SequenceStart { anchor },
                    YamlEvent::MappingEnd | YamlEvent::SequenceEnd => {
                        // A flow collection ends at its closing bracket; a block one at its
                        // last child.
                        let flow = matches!(
                            self.text
                                .as_bytes()
                                .get(span.start.offset - self.chunk.range.start),
                            Some(b']' | b'}')
                        );
                        Event::CollectionEnd {
                            end: flow.then_some(span.end),
                        }
                    }
                };
                Ok((event, span))
            }
        })
    }
}

/// A JSON text (one value, or several in a row) as an event source.
struct JsonEvents<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
    line_start: usize,
    /// The last column computed, to count characters from there rather than from the line's
    /// start (minified JSON is one long line).
    column_cache: (usize, usize),
    /// Open collections: `true` for an object.
    stack: Vec<bool>,
    state: JsonState,
    /// Keys and scalars read so far.
    tokens: usize,
    /// The reading stopped at a first token that is not JSON at all (a bare word, an
    /// unquoted key): the text is YAML that starts with a bracket.
    foreign: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonState {
    /// Between top-level values.
    Between,
    /// A top-level value is about to start.
    DocumentValue,
    /// After a value: a comma, a closing bracket, or the document's end.
    AfterValue,
    /// An object member's key, or (first member) the closing brace.
    KeyOrEnd {
        first: bool,
    },
    /// After a key: the colon, then the value.
    Colon,
    /// An array item, or (first item) the closing bracket.
    ItemOrEnd {
        first: bool,
    },
    /// A value (after a colon or a comma in an array).
    Value,
    Ended,
}

impl<'a> JsonEvents<'a> {
    /// Reads the chunk's part of `whole` (offsets are the whole text's: the chunk starts a
    /// line, so columns need no shift).
    fn new(whole: &'a str, chunk: Chunk) -> Self {
        let text = whole.get(..chunk.range.end).unwrap_or(whole);
        let start = chunk.range.start;
        let bom = if text.get(start..).is_some_and(|t| t.starts_with('\u{FEFF}')) {
            3
        } else {
            0
        };
        Self {
            text,
            offset: start + bom,
            line: chunk.line,
            line_start: start,
            column_cache: (0, 0),
            stack: Vec::new(),
            state: JsonState::Between,
            tokens: 0,
            foreign: false,
        }
    }

    /// A first token that is not JSON: remembered, so that the text can be read as YAML.
    fn foreign_token(&mut self, offset: usize, message: String) -> SyntaxError {
        self.foreign = self.tokens == 0;
        self.error(offset, message)
    }

    fn position_at(&mut self, offset: usize) -> Position {
        let (from, mut column) =
            if self.column_cache.0 >= self.line_start && self.column_cache.0 <= offset {
                self.column_cache
            } else {
                (self.line_start, 0)
            };
        column += self.text.get(from..offset).map_or(0, |s| {
            if s.is_ascii() {
                s.len()
            } else {
                s.chars().count()
            }
        });
        self.column_cache = (offset, column);
        Position {
            line: self.line,
            column: column + 1,
            offset,
        }
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position: self.position_at(offset),
            message: message.into(),
        }
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.offset) {
            match b {
                b' ' | b'\t' | b'\r' => self.offset += 1,
                b'\n' => {
                    self.offset += 1;
                    self.line += 1;
                    self.line_start = self.offset;
                }
                _ => break,
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.offset).copied()
    }

    fn span(&mut self, start: usize, end: usize) -> Span {
        Span {
            start: self.position_at(start),
            end: self.position_at(end),
        }
    }

    /// A string starting at the current `"`: its value and span.
    fn string(&mut self) -> Result<(String, Span), SyntaxError> {
        let start = self.offset;
        let bytes = self.text.as_bytes();
        let mut i = start + 1;
        let mut escaped = false;
        loop {
            match bytes.get(i) {
                None => return Err(self.error(start, "unterminated string")),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(b) if *b < 0x20 => {
                    return Err(self.error(
                        i,
                        "control character in a string: escape it (\\n, \\t, \\u00XX)",
                    ));
                }
                Some(_) => i += 1,
            }
        }
        let end = i + 1;
        let raw = self.text.get(start..end).unwrap_or_default();
        let value = if escaped {
            serde_json::from_str::<String>(raw).map_err(|e| {
                let message = strip_serde_position(&e.to_string());
                self.error(start, message)
            })?
        } else {
            raw.get(1..raw.len() - 1).unwrap_or_default().to_owned()
        };
        self.offset = end;
        self.tokens += 1;
        Ok((value, self.span(start, end)))
    }

    /// A number, `true`, `false` or `null` at the current offset.
    fn literal(&mut self) -> Result<(Value, Span), SyntaxError> {
        let start = self.offset;
        let bytes = self.text.as_bytes();
        let mut end = start;
        while bytes
            .get(end)
            .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.'))
        {
            end += 1;
        }
        let word = self.text.get(start..end).unwrap_or_default();
        let value = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            "null" => Value::Null,
            "" => {
                let found = self.text.get(start..).and_then(|s| s.chars().next());
                let message = match found {
                    Some(c) => format!("expected a JSON value, found {c:?}"),
                    None => "expected a JSON value, found the end of the text".to_owned(),
                };
                return Err(self.foreign_token(start, message));
            }
            _ => match serde_json::from_str::<Number>(word) {
                Ok(n) => Value::Number(n),
                Err(_) => {
                    let message = format!("expected a JSON value, found {word:?}");
                    return Err(self.foreign_token(start, message));
                }
            },
        };
        self.offset = end;
        self.tokens += 1;
        Ok((value, self.span(start, end)))
    }

    fn value_event(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        let start = self.offset;
        match self.peek() {
            Some(b'{') => {
                self.offset += 1;
                self.stack.push(true);
                self.state = JsonState::KeyOrEnd { first: true };
                Ok((
                    Event::MappingStart { anchor: 0 },
                    self.span(start, start + 1),
                ))
            }
            Some(b'[') => {
                self.offset += 1;
                self.stack.push(false);
                self.state = JsonState::ItemOrEnd { first: true };
                Ok((
                    Event::SequenceStart { anchor: 0 },
                    self.span(start, start + 1),
                ))
            }
            Some(b'"') => {
                let (s, span) = self.string()?;
                self.state = JsonState::AfterValue;
                Ok((Event::Value(Value::String(s)), span))
            }
            _ => {
                let (v, span) = self.literal()?;
                self.state = JsonState::AfterValue;
                Ok((Event::Value(v), span))
            }
        }
    }

    fn close(&mut self, object: bool) -> Result<(Event<'a>, Span), SyntaxError> {
        let start = self.offset;
        if self.stack.pop() != Some(object) {
            return Err(self.error(start, "unbalanced closing bracket"));
        }
        self.offset += 1;
        self.state = JsonState::AfterValue;
        let span = self.span(start, start + 1);
        Ok((
            Event::CollectionEnd {
                end: Some(span.end),
            },
            span,
        ))
    }

    fn next(&mut self) -> Option<Result<(Event<'a>, Span), SyntaxError>> {
        loop {
            self.skip_whitespace();
            let here = self.offset;
            let result = match self.state {
                JsonState::Ended => return None,
                JsonState::Between => match self.peek() {
                    None => {
                        self.state = JsonState::Ended;
                        let span = self.span(here, here);
                        Ok((Event::StreamEnd, span))
                    }
                    Some(_) => {
                        self.state = JsonState::DocumentValue;
                        let span = self.span(here, here);
                        Ok((Event::DocumentStart, span))
                    }
                },
                JsonState::DocumentValue | JsonState::Value => self.value_event(),
                JsonState::AfterValue => match (self.stack.last().copied(), self.peek()) {
                    (None, _) => {
                        self.state = JsonState::Between;
                        let span = self.span(here, here);
                        Ok((Event::DocumentEnd, span))
                    }
                    (Some(object), Some(b',')) => {
                        self.offset += 1;
                        self.state = if object {
                            JsonState::KeyOrEnd { first: false }
                        } else {
                            JsonState::ItemOrEnd { first: false }
                        };
                        continue;
                    }
                    (Some(true), Some(b'}')) => self.close(true),
                    (Some(false), Some(b']')) => self.close(false),
                    (Some(object), _) => Err(self.error(
                        here,
                        if object {
                            "expected ',' or '}' after an object member"
                        } else {
                            "expected ',' or ']' after an array item"
                        },
                    )),
                },
                JsonState::KeyOrEnd { first } => match self.peek() {
                    Some(b'}') if first => self.close(true),
                    Some(b'"') => match self.string() {
                        Ok((key, span)) => {
                            self.state = JsonState::Colon;
                            Ok((Event::Value(Value::String(key)), span))
                        }
                        Err(e) => Err(e),
                    },
                    _ => Err(self.foreign_token(
                        here,
                        "expected an object key (a string in double quotes)".to_owned(),
                    )),
                },
                JsonState::Colon => {
                    if self.peek() == Some(b':') {
                        self.offset += 1;
                        self.state = JsonState::Value;
                        continue;
                    }
                    Err(self.error(here, "expected ':' after an object key"))
                }
                JsonState::ItemOrEnd { first } => match self.peek() {
                    Some(b']') if first => self.close(false),
                    _ => self.value_event(),
                },
            };
            if result.is_err() {
                self.state = JsonState::Ended;
            }
            return Some(result);
        }
    }
}

enum Source<'a> {
    /// Boxed: the parser's state is large, and the builder moves the source around.
    Yaml(Box<YamlEvents<'a>>),
    Json(JsonEvents<'a>),
}

impl<'a> Source<'a> {
    /// The chunk a YAML source reads.
    fn chunk(&self) -> Chunk {
        match self {
            Source::Yaml(y) => y.chunk.clone(),
            Source::Json(j) => Chunk {
                range: 0..j.text.len(),
                line: 1,
            },
            // (A JSON source is never cut into chunks: only YAML chunks are read again.)
        }
    }

    /// Did a JSON reading stop at a first token that is not JSON?
    fn foreign(&self) -> bool {
        matches!(self, Source::Json(j) if j.foreign)
    }

    fn next(&mut self) -> Option<Result<(Event<'a>, Span), SyntaxError>> {
        match self {
            Source::Yaml(y) => y.next(),
            Source::Json(j) => j.next(),
        }
    }
}

/// A collection being built.
enum Frame {
    Map {
        map: Map<String, Value>,
        /// A key read, waiting for its value, and where the key is written.
        key: Option<(String, Span)>,
        /// Keys that came from merge keys (`<<`): explicit keys may override them.
        merged: Vec<String>,
        anchor: usize,
        node: OpenNode,
    },
    Seq {
        items: Vec<Value>,
        anchor: usize,
        node: OpenNode,
    },
}

/// A collection node whose end is not read yet.
struct OpenNode {
    path: PathKey,
    key: Option<Span>,
    start: Position,
}

/// Turns events into values and positions, one document at a time.
struct Builder<'a> {
    source: Source<'a>,
    stack: Vec<Frame>,
    anchors: Vec<(usize, Value)>,
    alias_nodes: usize,
    positions: Positions,
    last_end: Position,
    index: usize,
}

impl<'a> Builder<'a> {
    /// A builder whose first document is the `index`-th of the text.
    fn new(source: Source<'a>, index: usize) -> Self {
        Self {
            source,
            stack: Vec::new(),
            anchors: Vec::new(),
            alias_nodes: 0,
            positions: Positions::default(),
            last_end: Position::default(),
            index,
        }
    }

    fn error(position: Position, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            position,
            message: message.into(),
        }
    }

    /// The path key and key span of a node starting now under the innermost collection.
    fn child(&self) -> (PathKey, Option<Span>) {
        match self.stack.last() {
            None => (PathKey::ROOT, None),
            Some(Frame::Map { key, node, .. }) => match key {
                Some((k, span)) => (node.path.name(k), Some(*span)),
                // A key is being read: it is not a node of its own.
                None => (node.path, None),
            },
            Some(Frame::Seq { items, node, .. }) => (node.path.index(items.len()), None),
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
    }

    /// Reads the next document: `Ok(None)` at the end of the stream, `Ok(Some(None))` for an
    /// empty document.
    fn next_document(&mut self) -> Result<Option<Option<Document>>, SyntaxError> {
        self.anchors.clear();
        self.alias_nodes = 0;
        self.stack.clear();
        let mut root: Option<(Value, Position)> = None;
        let mut in_document = false;
        loop {
            let Some(event) = self.source.next() else {
                return Ok(None);
            };
            let (event, span) = event?;
            match event {
                Event::Nothing => {}
                Event::StreamEnd => {
                    return Ok(if in_document {
                        Some(self.finish(root))
                    } else {
                        None
                    });
                }
                Event::DocumentStart => in_document = true,
                Event::DocumentEnd => return Ok(Some(self.finish(root))),
                Event::Alias(id) => {
                    let value = self
                        .anchors
                        .iter()
                        .rev()
                        .find(|(a, _)| *a == id)
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| Self::error(span.start, "alias to an unknown anchor"))?;
                    self.alias_nodes += count_nodes(&value);
                    if self.alias_nodes > MAX_ALIAS_NODES {
                        return Err(Self::error(
                            span.start,
                            format!("aliases expand to more than {MAX_ALIAS_NODES} nodes"),
                        ));
                    }
                    if let Some(done) = self.scalar_node(value, span)? {
                        root = Some(done);
                    }
                }
                Event::Scalar {
                    text,
                    style,
                    anchor,
                    tag,
                } => {
                    let value = if self.expecting_key() {
                        Value::String(text.into_owned())
                    } else {
                        resolve_scalar(&text, style, tag.as_deref())
                    };
                    if anchor != 0 {
                        self.anchors.push((anchor, value.clone()));
                    }
                    if let Some(done) = self.scalar_node(value, span)? {
                        root = Some(done);
                    }
                }
                Event::Value(value) => {
                    if let Some(done) = self.scalar_node(value, span)? {
                        root = Some(done);
                    }
                }
                Event::MappingStart { anchor } | Event::SequenceStart { anchor } => {
                    if self.stack.len() >= MAX_DEPTH {
                        return Err(Self::error(
                            span.start,
                            format!("nesting deeper than {MAX_DEPTH} levels is not accepted"),
                        ));
                    }
                    if self.expecting_key() {
                        return Err(Self::error(span.start, "mapping keys must be scalars"));
                    }
                    let (path, key) = self.child();
                    let node = OpenNode {
                        path,
                        key,
                        start: span.start,
                    };
                    self.stack
                        .push(if matches!(event, Event::MappingStart { .. }) {
                            Frame::Map {
                                map: Map::new(),
                                key: None,
                                merged: Vec::new(),
                                anchor,
                                node,
                            }
                        } else {
                            Frame::Seq {
                                items: Vec::new(),
                                anchor,
                                node,
                            }
                        });
                }
                Event::CollectionEnd { end } => {
                    let (value, anchor, node) = match self.stack.pop() {
                        Some(Frame::Map {
                            map, anchor, node, ..
                        }) => (Value::Object(map), anchor, node),
                        Some(Frame::Seq {
                            items,
                            anchor,
                            node,
                        }) => (Value::Array(items), anchor, node),
                        None => return Err(Self::error(span.start, "unbalanced collection end")),
                    };
                    let end = end.unwrap_or(self.last_end).max(node.start);
                    self.last_end = end;
                    self.positions.insert(
                        node.path,
                        NodeSpan {
                            key: node.key,
                            value: Span {
                                start: node.start,
                                end,
                            },
                        },
                    );
                    if anchor != 0 {
                        self.anchors.push((anchor, value.clone()));
                    }
                    if let Some(done) = self.push_value(value, node.start, node.key)? {
                        root = Some(done);
                    }
                }
            }
        }
    }

    fn finish(&mut self, root: Option<(Value, Position)>) -> Option<Document> {
        let positions = std::mem::take(&mut self.positions);
        let index = self.index;
        self.index += 1;
        root.filter(|(v, _)| !v.is_null())
            .map(|(value, start)| Document {
                value,
                index,
                start,
                positions,
            })
    }

    /// A scalar (or alias) node: recorded with its position unless it is a key.
    fn scalar_node(
        &mut self,
        value: Value,
        span: Span,
    ) -> Result<Option<(Value, Position)>, SyntaxError> {
        if self.expecting_key() {
            return self.push_key(value, span).map(|()| None);
        }
        let (path, key) = self.child();
        self.positions.insert(path, NodeSpan { key, value: span });
        self.last_end = span.end;
        self.push_value(value, span.start, key)
    }

    fn push_key(&mut self, value: Value, span: Span) -> Result<(), SyntaxError> {
        let Some(Frame::Map {
            map, key, merged, ..
        }) = self.stack.last_mut()
        else {
            return Ok(());
        };
        let Value::String(k) = value else {
            return Err(Self::error(span.start, "mapping keys must be scalars"));
        };
        if map.contains_key(&k) && k != "<<" && !merged.contains(&k) {
            return Err(Self::error(span.start, format!("duplicate key {k:?}")));
        }
        *key = Some((k, span));
        Ok(())
    }

    /// Adds a finished value to its parent; returns it when it is the document's root.
    fn push_value(
        &mut self,
        value: Value,
        start: Position,
        key_span: Option<Span>,
    ) -> Result<Option<(Value, Position)>, SyntaxError> {
        match self.stack.last_mut() {
            None => Ok(Some((value, key_span.map_or(start, |k| k.start)))),
            Some(Frame::Seq { items, .. }) => {
                items.push(value);
                Ok(None)
            }
            Some(Frame::Map {
                map, key, merged, ..
            }) => {
                let Some((k, _)) = key.take() else {
                    return Err(Self::error(start, "a mapping value without a key"));
                };
                if k == "<<" {
                    merge(map, merged, value);
                } else {
                    merged.retain(|m| *m != k);
                    map.insert(k, value);
                }
                Ok(None)
            }
        }
    }
}

/// YAML merge keys (`<<: *base`): keys not already present are copied in.
fn merge(map: &mut Map<String, Value>, merged: &mut Vec<String>, value: Value) {
    let sources = match value {
        Value::Array(items) => items,
        other => vec![other],
    };
    for source in sources {
        if let Value::Object(source) = source {
            for (k, v) in source {
                if !map.contains_key(&k) {
                    merged.push(k.clone());
                    map.insert(k, v);
                }
            }
        }
    }
}

fn count_nodes(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(count_nodes).sum::<usize>(),
        _ => 1,
    }
}

/// serde_json appends " at line L column C" (positions inside the extracted text, which
/// mean nothing to the user; the error's own position says where).
fn strip_serde_position(message: &str) -> String {
    message
        .find(" at line ")
        .map_or(message, |i| message.get(..i).unwrap_or(message))
        .to_owned()
}

/// YAML 1.2 core schema resolution of a scalar.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::String(text.to_owned()),
        Some("null") => return Value::Null,
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Some(n) = parse_int(text) {
        return Value::Number(n);
    }
    if is_float(text)
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

fn parse_int(text: &str) -> Option<Number> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..)?),
        Some(b'+') => (false, text.get(1..)?),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(d) = digits.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = digits.strip_prefix("0o") {
        (8, d)
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let n = i64::try_from(magnitude)
            .ok()
            .map(|m| -m)
            .or((magnitude == 1u64 << 63).then_some(i64::MIN))?;
        Some(Number::from(n))
    } else {
        Some(Number::from(magnitude))
    }
}

fn is_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (t.get(..i).unwrap_or(""), t.get(i + 1..)),
        None => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (digits(int) || int.is_empty())
                && (digits(frac) || (frac.is_empty() && !int.is_empty()))
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn at(doc: &Document, path: &str) -> Option<NodeSpan> {
        doc.positions.get(&JsonPath::parse(path).unwrap())
    }

    #[test]
    fn multi_document_yaml_with_core_schema() {
        let docs =
            parse_documents("a: 1\nb: [x, 'y', true, ~, 1.5, 0x10]\n---\n---\nc: |\n  lit\n")
                .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].value,
            json!({"a": 1, "b": ["x", "y", true, null, 1.5, 16]})
        );
        assert_eq!(docs[1].value, json!({"c": "lit\n"}));
        assert_eq!(docs[1].index, 2);
        assert_eq!(docs[1].start.line, 5);
    }

    #[test]
    fn anchors_merge_keys_and_key_order() {
        let docs =
            parse_documents("base: &b {x: 1, y: 2}\nz: 0\nuse:\n  <<: *b\n  y: 3\n").unwrap();
        assert_eq!(
            docs[0].value,
            json!({"base": {"x": 1, "y": 2}, "z": 0, "use": {"y": 3, "x": 1}})
        );
        let keys: Vec<_> = docs[0].value.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["base", "z", "use"]);
        // A merged member has no text of its own: the nearest written node is its mapping.
        let (span, depth) = docs[0]
            .positions
            .nearest(&JsonPath::parse("$.use.x").unwrap())
            .unwrap();
        assert_eq!((span.start().line, depth), (3, 1));
        assert_eq!(at(&docs[0], "$.use.y").unwrap().start().line, 5);
    }

    #[test]
    fn errors_have_positions() {
        let e = parse_documents("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.position.line >= 2, "{e}");
        let e = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.position.line, 2);
        assert!(e.message.contains("duplicate key"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut text = String::new();
        for i in 0..10_000 {
            text.push_str(&" ".repeat(i));
            text.push_str("k:\n");
        }
        let e = parse_documents(&text).unwrap_err();
        assert!(e.message.contains("nesting"), "{e}");
        let flow = format!("a: {}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_documents(&flow).is_err());
        let json = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            parse_documents(&json)
                .unwrap_err()
                .message
                .contains("nesting")
        );
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        let e = parse_documents(&text).unwrap_err();
        assert!(e.message.contains("aliases expand"), "{e}");
    }

    #[test]
    fn positions_of_keys_and_values() {
        let text = "a: 1\nb:\n  c: [x, y]\n  d:\n  - e: f\n  - g: h\n---\nz: 9\n";
        let docs = parse_documents(text).unwrap();
        let span = at(&docs[0], "$.b.d[1].g").unwrap();
        assert_eq!((span.value.start.line, span.value.start.column), (6, 8));
        assert_eq!(
            span.key.map(|k| (k.start.line, k.start.column)),
            Some((6, 5))
        );
        let slice = |s: Span| &text[s.start.offset..s.end.offset];
        assert_eq!(slice(span.value), "h");
        assert_eq!(slice(at(&docs[0], "$.b.c").unwrap().value), "[x, y]");
        let d = at(&docs[0], "$.b.d").unwrap();
        assert_eq!(slice(d.value), "e: f\n  - g: h");
        // A finding about `d` points at its key, not its first item.
        assert_eq!(d.start().line, 4);
        assert_eq!(at(&docs[1], "$.z").unwrap().start().line, 8);
        assert!(at(&docs[0], "$.nope").is_none());
        assert_eq!(docs[0].lines(text), 0..text.find("\n---").unwrap());
    }

    #[test]
    fn json_is_read_with_positions() {
        let text = "{\n  \"kind\": \"Pod\",\n  \"spec\": {\"a\": [1, 2.5, -3, true, null, \"\\u00e9\"]}\n}\n{\"b\": 1}";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0].value,
            json!({"kind": "Pod", "spec": {"a": [1, 2.5, -3, true, null, "é"]}})
        );
        let a = at(&docs[0], "$.spec.a").unwrap();
        assert_eq!(a.start().line, 3);
        assert_eq!(a.key.unwrap().start.column, 12);
        assert_eq!(at(&docs[0], "$.spec.a[5]").unwrap().value.start.line, 3);
        assert_eq!(docs[1].value, json!({"b": 1}));
        for (bad, line) in [
            ("{\"a\": 1,\n}", 2),
            ("{\n \"a\": }", 2),
            ("{\"a\" 1}", 1),
            ("[1,\n 2,\n x]", 3),
            ("{\"a\": \"x\ny\"}", 1),
        ] {
            let e = parse_documents(bad).unwrap_err();
            assert_eq!(e.position.line, line, "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_yaml_flow_mapping_is_not_taken_for_json() {
        let docs = parse_documents("{apiVersion: v1, kind: Pod, metadata: {name: p}}\n").unwrap();
        assert_eq!(
            docs[0].value,
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
        );
        assert_eq!(
            at(&docs[0], "$.metadata.name").unwrap().value.start.column,
            46
        );
    }

    #[test]
    fn non_ascii_offsets_are_bytes() {
        let text = "é: \"ü\"\nname: x # ø\nlast: [ä]\n";
        let docs = parse_documents(text).unwrap();
        let name = at(&docs[0], "$.name").unwrap();
        assert_eq!(&text[name.value.start.offset..name.value.end.offset], "x");
        let last = at(&docs[0], "$.last[0]").unwrap();
        assert_eq!(&text[last.value.start.offset..last.value.end.offset], "ä");
        assert_eq!(last.value.start.column, 8);
    }

    #[test]
    fn a_tab_after_a_colon_is_separation() {
        let text = "x: 1\n---\nk:\n  - a:\tb\n  - c:\t\t{d: e} # f\nlit: |\n  a:\tb\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(
            docs[1].value,
            json!({"k": [{"a": "b"}, {"c": {"d": "e"}}], "lit": "a:\tb\n"})
        );
        assert_eq!(at(&docs[1], "$.k[1].c.d").unwrap().value.start.line, 5);
        let e = parse_documents("a: 1\n---\nb:\tc\n  d: [\n").unwrap_err();
        assert_eq!(e.position.line, 4, "{e}");
    }

    #[test]
    fn documents_are_read_one_by_one_and_keep_their_lines() {
        let text =
            "# head\na: 1\n---\n--- # empty\n...\n%YAML 1.2\n---\nb: [1,\n  2]\n---\n  c: 3\n";
        let docs = parse_documents(text).unwrap();
        let summary: Vec<_> = docs.iter().map(|d| (d.index, d.start.line)).collect();
        assert_eq!(summary, [(0, 2), (3, 8), (4, 11)]);
        assert_eq!(docs[2].value, json!({"c": 3}));
        assert_eq!(&text[docs[1].lines(text)], "b: [1,\n  2]");
        assert_eq!(&text[docs[2].lines(text)], "  c: 3");
        // An error names its line in the whole text.
        let e = parse_documents("a: 1\n---\nb: 2\n---\nc: [\n").unwrap_err();
        assert_eq!(e.position.line, 6, "{e}");
    }

    #[test]
    fn chunks_read_on_their_own_give_the_same_documents() {
        let text = "a: 1\n---\nb:\n  c: [1]\n...\n# tail\n---\n{\"d\": 2}\n--- |\n  lit\n";
        let whole: Vec<(Value, usize, Option<NodeSpan>)> = documents(text)
            .map(|d| d.unwrap())
            .map(|d| (d.value.clone(), d.start.offset, d.positions.root()))
            .collect();
        let parts: Vec<(Value, usize, Option<NodeSpan>)> = chunks(text)
            .flat_map(|c| chunk_documents(text, &c).collect::<Vec<_>>())
            .map(|d| d.unwrap())
            .map(|d| (d.value.clone(), d.start.offset, d.positions.root()))
            .collect();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole, parts);
        let lines: Vec<usize> = chunks(text).map(|c| c.line).collect();
        assert_eq!(lines, [1, 2, 5, 7, 9]);
    }

    #[test]
    fn floats_and_ints() {
        assert!(is_float("1.5") && is_float("-2e10") && is_float(".5") && is_float("1."));
        assert!(!is_float("1.2.3") && !is_float("e5") && !is_float("."));
        assert_eq!(
            parse_int("-9223372036854775808"),
            Some(Number::from(i64::MIN))
        );
        assert_eq!(resolve_scalar("012", ScalarStyle::Plain, None), json!(12));
        assert_eq!(
            resolve_scalar("1.0.0", ScalarStyle::Plain, None),
            json!("1.0.0")
        );
    }
}
