//! The one way the tools find and read the SAM template (`ddb watch`, `ddb redrive`, the filter checks):
//! `--template PATH` when given, else `template.yaml` in the current folder or the nearest folder above it, so a
//! command run from anywhere inside the checkout reads the checkout's template. What each reader takes out of it
//! (the mapping's settings, the FilterCriteria, BatchSize) is the reader's own.

use serde_norway::Value as Yaml;
use std::path::{Path, PathBuf};

/// The file name searched for.
pub const FILE_NAME: &str = "template.yaml";

/// Why there is no template to read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("no {FILE_NAME} in {} or a folder above it: pass --template PATH", start.display())]
    NotFound { start: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid YAML: {source}", path.display())]
    Yaml {
        path: PathBuf,
        source: serde_norway::Error,
    },
}

/// A template as read: where it was, and its YAML (short-form intrinsics such as `!Ref` are tagged values).
#[derive(Debug, Clone)]
pub struct Template {
    pub path: PathBuf,
    pub yaml: Yaml,
}

impl Template {
    /// [`locate`]s the template and reads it.
    pub fn find(explicit: Option<&Path>) -> Result<Self, TemplateError> {
        Self::read(&locate(explicit)?)
    }

    /// Reads the template at `path`.
    pub fn read(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// The template in `text`, labelled `path` in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, TemplateError> {
        let yaml = serde_norway::from_str(text).map_err(|source| TemplateError::Yaml {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            yaml,
        })
    }
}

/// `explicit` when given (it need not exist yet: reading it says so); else `template.yaml` in the current
/// folder or the nearest folder above it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, TemplateError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let start = std::env::current_dir().map_err(|source| TemplateError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    locate_from(&start)
}

/// `template.yaml` in `start` or the nearest folder above it.
pub fn locate_from(start: &Path) -> Result<PathBuf, TemplateError> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TemplateError::NotFound {
            start: start.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_template_above() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert!(matches!(
            locate_from(&deep),
            Err(TemplateError::NotFound { .. })
        ));
        std::fs::write(root.path().join(FILE_NAME), "Resources: {}\n").unwrap();
        assert_eq!(locate_from(&deep).unwrap(), root.path().join(FILE_NAME));
        std::fs::write(root.path().join("a").join(FILE_NAME), "x: [").unwrap();
        let nearer = locate_from(&deep).unwrap();
        assert_eq!(nearer, root.path().join("a").join(FILE_NAME));
        let error = Template::read(&nearer).unwrap_err().to_string();
        assert!(error.contains("is not valid YAML"), "{error}");
    }

    #[test]
    fn an_explicit_path_wins_and_a_missing_one_says_so() {
        let missing = Path::new("/nonexistent/template.yaml");
        assert_eq!(locate(Some(missing)).unwrap(), missing);
        let error = Template::find(Some(missing)).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read /nonexistent/template.yaml"),
            "{error}"
        );
    }
}
