//! Manifest inputs: files, folders (recursively, `*.yaml`, `*.yml`, `*.json`), or `-` for
//! standard input.
//!
//! A folder that holds a Helm chart (`Chart.yaml`) or a kustomization (`kustomization.yaml`)
//! is source that must be rendered first: what reaches the cluster is what `helm template` or
//! `kustomize build` prints (namespaces, labels and patches change there), so checking the
//! files as they are would judge objects nobody applies. Named on the command line, such a
//! folder is an error that says what to run; met while walking a folder, it is skipped with
//! a warning saying the same.
//!
//! Inputs are listed first and read one at a time by the check pipeline, so a run over ten
//! thousand files holds a few of them in memory at once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use apart_policy::source::manifest::{self, Contents};
use apart_policy::source::path::JsonPath;
use apart_policy::source::read;
use serde_json::Value;

use crate::diagnostic::Diagnostic;

pub use apart_policy::source::manifest::MAX_OBJECT_BYTES;

/// The name standard input goes by.
pub const STDIN: &str = "<stdin>";

pub use apart_policy::report::Source;

/// One input to check: a file to read when its turn comes, standard input to read as it
/// comes, or text already read.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file.
    File {
        /// Its path.
        path: PathBuf,
        /// Named on the command line (not found in a folder).
        explicit: bool,
    },
    /// Standard input, read once, as it comes (`apart check`; `apart fix` reads it first,
    /// as [`Input::Text`], since it prints it back).
    Stdin,
    /// Text already read (standard input for `apart fix`, or a test's).
    Text {
        /// `<stdin>`, or the name it goes by.
        name: String,
        /// The text.
        text: Arc<str>,
    },
}

impl Input {
    /// The name findings and errors use.
    pub fn name(&self) -> String {
        match self {
            Input::File { path, .. } => path.display().to_string(),
            Input::Stdin => STDIN.to_owned(),
            Input::Text { name, .. } => name.clone(),
        }
    }

    /// Was it named by the user (a file argument or stdin) rather than found in a folder?
    pub fn explicit(&self) -> bool {
        match self {
            Input::File { explicit, .. } => *explicit,
            Input::Stdin | Input::Text { .. } => true,
        }
    }

    /// Its text.
    pub fn load(&self) -> Result<Arc<str>, Diagnostic> {
        match self {
            Input::Text { text, .. } => Ok(Arc::clone(text)),
            Input::File { path, .. } => {
                let bytes = std::fs::read(path).map_err(|e| io_error(path, &e))?;
                decode(&path.display().to_string(), bytes).map(Arc::from)
            }
            Input::Stdin => {
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .map_err(|e| io_error(Path::new(STDIN), &e))?;
                decode(STDIN, bytes).map(Arc::from)
            }
        }
    }

    /// Its bytes, to read piece by piece (files and standard input are not read whole).
    pub fn open(&self) -> Result<Box<dyn Read + Send>, Diagnostic> {
        match self {
            Input::File { path, .. } => std::fs::File::open(path)
                .map(|f| Box::new(f) as Box<dyn Read + Send>)
                .map_err(|e| io_error(path, &e)),
            Input::Stdin => Ok(Box::new(std::io::stdin())),
            Input::Text { text, .. } => {
                Ok(Box::new(std::io::Cursor::new(text.as_bytes().to_vec())))
            }
        }
    }

    /// What a read error of this input says.
    pub fn read_error(&self, e: &std::io::Error) -> Diagnostic {
        match self {
            Input::File { path, .. } => io_error(path, e),
            Input::Stdin | Input::Text { .. } => io_error(Path::new(&self.name()), e),
        }
    }
}

impl From<&Source> for Input {
    fn from(source: &Source) -> Self {
        Input::Text {
            name: source.name.clone(),
            text: Arc::from(source.text.as_str()),
        }
    }
}

/// The inputs named on the command line, and the folders skipped on the way.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The inputs, in the order they are checked.
    pub inputs: Vec<Input>,
    /// Warnings: folders found while walking that must be rendered first.
    pub skipped: Vec<String>,
}

fn io_error(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Text from bytes; invalid UTF-8 is an error at its line and column.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        not_utf8(name, e.as_bytes(), valid, 1, 0)
    })
}

/// The error for bytes that are not UTF-8 from `valid` on; `bytes` are the part of the input
/// that starts on line `first_line`, at byte `offset` of the input.
pub fn not_utf8(
    name: &str,
    bytes: &[u8],
    valid: usize,
    first_line: usize,
    offset: usize,
) -> Diagnostic {
    {
        let before = bytes.get(..valid).unwrap_or_default();
        let line = before.iter().filter(|b| **b == b'\n').count() + first_line;
        let line_start = before
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(before.get(line_start..).unwrap_or_default())
            .chars()
            .count()
            + 1;
        Diagnostic::Input {
            file: name.to_owned(),
            line,
            column,
            message: format!(
                "not UTF-8 text (byte {} is not part of a UTF-8 character): manifests must be YAML or JSON in UTF-8",
                offset + valid
            ),
        }
    }
}

/// What must be rendered before apart can check a folder, if anything.
fn must_render(dir: &Path) -> Option<String> {
    let shown = dir.display();
    if dir.join("Chart.yaml").is_file() {
        return Some(format!(
            "{shown} is a Helm chart: check what it renders, e.g. `helm template {shown} | apart check -p POLICY -`"
        ));
    }
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .any(|k| dir.join(k).is_file())
        .then(|| {
            format!(
                "{shown} is a kustomization: check what it renders, e.g. `kustomize build {shown} | apart check -p POLICY -`"
            )
        })
}

fn collect(path: &Path, explicit: bool, out: &mut Inputs) -> Result<(), Diagnostic> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, &e))?;
    if !meta.is_dir() {
        out.inputs.push(Input::File {
            path: path.to_owned(),
            explicit,
        });
        return Ok(());
    }
    if let Some(message) = must_render(path) {
        if explicit {
            return Err(Diagnostic::Usage(message));
        }
        out.skipped.push(format!("skipped {message}"));
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| io_error(path, &e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let is_manifest = entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        // `.git`, `.github` and the like hold no manifests (workflow YAML is not Kubernetes);
        // a hidden folder named on the command line is still read.
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden && entry.is_dir() {
            continue;
        }
        if entry.is_dir() || is_manifest {
            collect(&entry, false, out)?;
        }
    }
    Ok(())
}

/// Lists the inputs named on the command line. `-` is standard input: read as it comes, or,
/// with `read_stdin`, read whole now (for `apart fix`, which prints it back).
pub fn list(args: &[PathBuf], read_stdin: bool) -> Result<Inputs, Diagnostic> {
    let mut out = Inputs::default();
    for arg in args {
        if arg.as_os_str() == "-" {
            out.inputs.push(if read_stdin {
                Input::Text {
                    name: STDIN.to_owned(),
                    text: Input::Stdin.load()?,
                }
            } else {
                Input::Stdin
            });
            continue;
        }
        collect(arg, true, &mut out)?;
    }
    Ok(out)
}

/// Reads the inputs named on the command line, whole (for commands that read one snapshot or
/// a few files; `check` and `fix` stream through [`list`]).
pub fn read_sources(args: &[PathBuf]) -> Result<Vec<Source>, Diagnostic> {
    let listed = list(args, true)?;
    listed
        .inputs
        .iter()
        .map(|input| {
            Ok(Source {
                name: input.name(),
                text: input.load()?.to_string(),
            })
        })
        .collect()
}

/// One Kubernetes object from the inputs.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Index into the sources.
    pub source: usize,
    /// Which document of the source.
    pub document: usize,
    /// Where the object is inside its document (`$`, or `$.items[i]` in a List).
    pub base: JsonPath,
    /// The object.
    pub value: Value,
    /// The object's first line.
    pub line: usize,
}

/// An input error at a position of a source.
pub fn input_error(file: &str, position: read::Position, message: String) -> Diagnostic {
    Diagnostic::Input {
        file: file.to_owned(),
        line: position.line,
        column: position.column,
        message,
    }
}

/// Every object of the sources, in order (what the tests and the Gatekeeper differential
/// compare object by object). Documents that must be rendered first are errors here.
pub fn objects(sources: &[Source]) -> Result<Vec<Manifest>, Diagnostic> {
    let mut out = Vec::new();
    for (index, src) in sources.iter().enumerate() {
        for document in read::documents(&src.text) {
            let document = document.map_err(|e| {
                let e = manifest::syntax_error(&src.text, 1, e);
                input_error(&src.name, e.position, e.message)
            })?;
            match manifest::contents(document, &src.name)
                .map_err(|e| input_error(&src.name, e.position, e.message))?
            {
                Contents::Unrendered(u) | Contents::Foreign(u) => {
                    return Err(input_error(&src.name, u.position, u.message));
                }
                Contents::Objects(objects) => {
                    out.extend(objects.into_iter().map(|o| Manifest {
                        source: index,
                        document: o.document,
                        base: o.base,
                        value: o.value,
                        line: o.start.line,
                    }));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_reported_at_its_line_and_column() {
        let Err(Diagnostic::Input { line, column, .. }) =
            decode("x.yaml", b"a: 1\nb: \xc3\xa9\xff\n".to_vec())
        else {
            panic!("invalid UTF-8 is an input error");
        };
        assert_eq!((line, column), (2, 5));
    }
}
