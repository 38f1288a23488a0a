//! What a model base path holds, in words: told at start-up, in the answer to a
//! request for a model that is not loaded, and by the CLI when `--model` is not a
//! model version folder.
//!
//! The layout served is TensorFlow Serving's `BASE/<model name>/<integer version>/`,
//! each version folder holding a `manifest.json` with the model's `kind`. The natural
//! mistakes are one level off: `--model-base-path models` where quickstart wrote
//! `models/movielens/{retrieval,ranking}/1/`, a model folder (`…/retrieval`) or a
//! version folder (`…/retrieval/1`). [`scan`] reads only directory listings and
//! manifests (never model weights), so it is cheap enough to run at start-up.

use std::path::{Path, PathBuf};

use crate::registry::parse_version;

/// The layout the server expects, for messages.
pub const EXPECTED: &str = "<model name>/<integer version>/manifest.json";

/// One integer-named version folder of a model folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFolder {
    /// The version number (the folder's name).
    pub version: u64,
    /// The `kind` in its `manifest.json` (`"retrieval"`, `"ranking"`), or what is
    /// wrong with the manifest.
    pub kind: Result<String, String>,
}

/// A sub-folder of the base path holding at least one version folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFolder {
    /// The model's name (the folder's name).
    pub name: String,
    /// Its version folders, lowest first.
    pub versions: Vec<VersionFolder>,
}

impl ModelFolder {
    /// Versions whose manifest names a kind (the ones the loader may serve).
    pub fn servable_versions(&self) -> impl Iterator<Item = &VersionFolder> {
        self.versions.iter().filter(|v| v.kind.is_ok())
    }

    /// `retrieval (version 1: retrieval model)` or
    /// `ranking (versions 1: ranking model, 2: no manifest.json)`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .versions
            .iter()
            .map(|v| match &v.kind {
                Ok(kind) => format!("{}: {kind} model", v.version),
                Err(e) => format!("{}: {e}", v.version),
            })
            .collect();
        let s = if self.versions.len() == 1 { "" } else { "s" };
        format!("{} (version{s} {})", self.name, parts.join(", "))
    }
}

/// What a base path holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The base path scanned.
    pub base: PathBuf,
    /// Sub-folders with version folders, by name.
    pub models: Vec<ModelFolder>,
    /// Other non-hidden sub-folders, by name.
    pub other_dirs: Vec<String>,
    /// The base path itself is a version folder (it has a `manifest.json`).
    pub is_version_folder: bool,
    /// Integer-named sub-folders of the base path itself: it is a model folder.
    pub own_versions: Vec<u64>,
}

/// Non-hidden sub-directory names of `dir`, sorted; empty if it cannot be read.
fn sub_dirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

/// The `kind` of the manifest in `dir`, or what is wrong with it.
fn manifest_kind(dir: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(dir.join("manifest.json")).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "no manifest.json".to_owned()
        } else {
            format!("manifest.json: {e}")
        }
    })?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("kind")?.as_str().map(str::to_owned))
        .ok_or_else(|| "manifest.json has no model kind".to_owned())
}

/// The integer-named sub-folders of `dir`, lowest first.
fn versions_in(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = sub_dirs(dir)
        .iter()
        .filter_map(|n| parse_version(n))
        .collect();
    v.sort_unstable();
    v
}

/// Lists what `base` holds: model folders with their versions and kinds, other
/// folders, and whether `base` is itself a model or version folder.
pub fn scan(base: &Path) -> Layout {
    let mut models = Vec::new();
    let mut other_dirs = Vec::new();
    for name in sub_dirs(base) {
        let dir = base.join(&name);
        let versions: Vec<VersionFolder> = versions_in(&dir)
            .into_iter()
            .map(|version| VersionFolder {
                version,
                kind: manifest_kind(&dir.join(version.to_string())),
            })
            .collect();
        if versions.is_empty() {
            if parse_version(&name).is_none() {
                other_dirs.push(name);
            }
        } else {
            models.push(ModelFolder { name, versions });
        }
    }
    Layout {
        base: base.to_path_buf(),
        models,
        other_dirs,
        is_version_folder: base.join("manifest.json").is_file(),
        own_versions: versions_in(base),
    }
}

/// `a/`, `a/ and b/`, `a/, b/ and c/`.
fn folders(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n}/")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

fn versions_text(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
}

impl Layout {
    /// Whether some version has a manifest with a kind (the loader may serve it).
    pub fn has_servable(&self) -> bool {
        self.models
            .iter()
            .any(|m| m.servable_versions().next().is_some())
    }

    /// The models found, one line each (`retrieval (version 1: retrieval model)`).
    pub fn found_lines(&self) -> Vec<String> {
        self.models.iter().map(ModelFolder::describe).collect()
    }

    /// Sub-folders of `base` that are themselves base paths holding servable models:
    /// `(folder, model names)`.
    fn nested_bases(&self) -> Vec<(PathBuf, Vec<String>)> {
        self.other_dirs
            .iter()
            .filter_map(|d| {
                let inner = scan(&self.base.join(d));
                inner.has_servable().then(|| {
                    let names = inner.models.iter().map(|m| m.name.clone()).collect();
                    (inner.base, names)
                })
            })
            .collect()
    }

    /// When nothing is servable: what the path looks like, what was probably meant,
    /// and the layout expected. `None` when some version is servable.
    pub fn diagnosis(&self) -> Option<String> {
        if self.has_servable() {
            return None;
        }
        let base = self.base.display();
        let nested = self.nested_bases();
        let msg = if self.is_version_folder {
            let model = self.base.parent();
            let suggestion = model.and_then(Path::parent).map_or(String::new(), |p| {
                format!(" — did you mean --model-base-path {}?", p.display())
            });
            format!("{base} is one version folder of a model, not a base path{suggestion}")
        } else if !self.own_versions.is_empty() {
            let name = self
                .base
                .file_name()
                .map_or("?".into(), |n| n.to_string_lossy().into_owned());
            let suggestion = self.base.parent().map_or(String::new(), |p| {
                let p = if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                };
                format!(" — did you mean --model-base-path {}?", p.display())
            });
            format!(
                "{base} is the folder of one model ({name}, versions {}), not a base path{suggestion}",
                versions_text(&self.own_versions)
            )
        } else if let Some((first, _)) = nested.first() {
            let found: Vec<String> = nested
                .iter()
                .map(|(dir, names)| {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    format!("{} under {}", folders(&names), dir.display())
                })
                .collect();
            format!(
                "no models directly under {base}, but found {} — did you mean --model-base-path {}?",
                found.join("; "),
                first.display()
            )
        } else if !self.models.is_empty() {
            format!(
                "no version of any model under {base} can be loaded: {}",
                self.found_lines().join("; ")
            )
        } else if !self.other_dirs.is_empty() {
            let names: Vec<&str> = self.other_dirs.iter().map(String::as_str).collect();
            format!(
                "{base} holds {} but no integer version folders inside them",
                folders(&names)
            )
        } else {
            format!("{base} holds no model folders")
        };
        let end = if msg.ends_with('?') { "" } else { "." };
        Some(format!(
            "{msg}{end} Expected {base}/{EXPECTED} (`shortlist quickstart --out DIR` writes DIR/movielens/retrieval/1/ and DIR/movielens/ranking/1/: serve DIR/movielens)"
        ))
    }

    /// The start-up report: one line per model found, then the diagnosis when
    /// nothing is servable, and a note for each of `wanted` (the models
    /// `/v1/recommend` uses by default) that is missing.
    pub fn report(&self, wanted: &[&str]) -> Vec<String> {
        let mut lines = Vec::new();
        for m in &self.models {
            lines.push(format!("found model {}", m.describe()));
        }
        if let Some(d) = self.diagnosis() {
            lines.push(d);
            return lines;
        }
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|w| !self.models.iter().any(|m| m.name == *w))
            .collect();
        if !missing.is_empty() {
            lines.push(format!(
                "no model named {} under {} (/v1/recommend uses \"retrieval\" then \"ranking\" unless a request names others)",
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(" or "),
                self.base.display()
            ));
        }
        lines
    }
}

/// Why `dir` (given as one model, e.g. the CLI's `--model`) is not a model version
/// folder and which folders are: `None` when it has a `manifest.json` or nothing
/// better can be said.
pub fn model_dir_hint(dir: &Path) -> Option<String> {
    let layout = scan(dir);
    if layout.is_version_folder {
        return None;
    }
    let shown = dir.display();
    if let Some(&last) = layout.own_versions.last() {
        return Some(format!(
            "{shown} is a model folder that holds versions: {}; pass a version folder, e.g. {}",
            versions_text(&layout.own_versions),
            dir.join(last.to_string()).display()
        ));
    }
    let examples = |l: &Layout| -> Vec<String> {
        l.models
            .iter()
            .filter_map(|m| {
                let v = m.servable_versions().last()?;
                let kind = v.kind.as_deref().unwrap_or_default();
                Some(format!(
                    "{} ({kind})",
                    l.base.join(&m.name).join(v.version.to_string()).display()
                ))
            })
            .collect()
    };
    let mut found = examples(&layout);
    if found.is_empty() {
        for (nested, _) in layout.nested_bases() {
            found.extend(examples(&scan(&nested)));
        }
    }
    (!found.is_empty()).then(|| {
        format!(
            "{shown} holds models, not one model's files; pass a version folder: {}",
            found.join(" or ")
        )
    })
}

/// Why `name` is not served when the base path has no folder for it: the expected
/// folder and the models that are loaded (`loaded`).
pub fn missing_model(base: &Path, name: &str, loaded: &[&str]) -> String {
    let loaded = if loaded.is_empty() {
        "none (the server log says at start-up what the path holds)".to_owned()
    } else {
        loaded.join(", ")
    };
    format!(
        "The model base path {} has no model {name:?} (expected {}); models loaded: {loaded}",
        base.display(),
        base.join(name).join("<version>").display()
    )
}

/// The answer to a request for a model version that is not loaded: TensorFlow
/// Serving's wording first (clients may match it), then why. `known_model`: the
/// base path has a folder for `name`; `live_version`: the version served, if any;
/// `loaded`: the models that have a loaded version.
pub fn not_found_message(
    base: &Path,
    name: &str,
    version: Option<u64>,
    known_model: bool,
    live_version: Option<u64>,
    loaded: &[&str],
) -> String {
    let tf = match version {
        None => format!("Servable not found for request: Latest({name})"),
        Some(v) => format!("Servable not found for request: Specific({name}, {v})"),
    };
    let why = match (live_version, known_model) {
        (Some(live), _) => format!("Only the highest version is served: {name} version {live}"),
        (None, true) => format!(
            "Model {name:?} under {} has no version that loaded (GET /v1/models/{name} lists each version's state and error)",
            base.display()
        ),
        (None, false) => missing_model(base, name, loaded),
    };
    format!("{tf}. {why}")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn model(base: &Path, name: &str, version: u64, kind: &str) {
        let d = base.join(name).join(version.to_string());
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("manifest.json"), format!("{{\"kind\": \"{kind}\"}}")).unwrap();
    }

    /// quickstart's layout: OUT/movielens/{retrieval,ranking}/1/.
    fn quickstart_out() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("models").join("movielens");
        model(&base, "retrieval", 1, "retrieval");
        model(&base, "ranking", 1, "ranking");
        tmp
    }

    #[test]
    fn a_good_base_path_reports_models_versions_and_kinds() {
        let tmp = quickstart_out();
        let base = tmp.path().join("models").join("movielens");
        model(&base, "ranking", 2, "ranking");
        std::fs::create_dir_all(base.join("ranking").join(".3.partial-x")).unwrap();
        let l = scan(&base);
        assert!(l.has_servable());
        assert_eq!(l.diagnosis(), None);
        assert_eq!(
            l.report(&["retrieval", "ranking"]),
            [
                "found model ranking (versions 1: ranking model, 2: ranking model)",
                "found model retrieval (version 1: retrieval model)",
            ]
        );
        assert_eq!(
            l.report(&["candidates", "ranking"]).last().unwrap(),
            &format!("no model named \"candidates\" under {} (/v1/recommend uses \"retrieval\" then \"ranking\" unless a request names others)", base.display())
        );
    }

    #[test]
    fn one_level_too_high_suggests_the_folder_that_holds_the_models() {
        let tmp = quickstart_out();
        let models = tmp.path().join("models");
        let l = scan(&models);
        assert!(!l.has_servable());
        let b = models.display();
        assert_eq!(
            l.diagnosis().unwrap(),
            format!("no models directly under {b}, but found ranking/ and retrieval/ under {b}/movielens — did you mean --model-base-path {b}/movielens? Expected {b}/<model name>/<integer version>/manifest.json (`shortlist quickstart --out DIR` writes DIR/movielens/retrieval/1/ and DIR/movielens/ranking/1/: serve DIR/movielens)")
        );
        assert_eq!(
            model_dir_hint(&models).unwrap(),
            format!(
                "{b} holds models, not one model's files; pass a version folder: {b}/movielens/ranking/1 (ranking) or {b}/movielens/retrieval/1 (retrieval)"
            )
        );
    }

    #[test]
    fn model_and_version_folders_are_named_as_such() {
        let tmp = quickstart_out();
        let base = tmp.path().join("models").join("movielens");
        let retrieval = base.join("retrieval");
        let d = scan(&retrieval).diagnosis().unwrap();
        assert!(
            d.starts_with(&format!(
                "{} is the folder of one model (retrieval, versions 1), not a base path — did you mean --model-base-path {}?",
                retrieval.display(),
                base.display()
            )),
            "{d}"
        );
        let d = scan(&retrieval.join("1")).diagnosis().unwrap();
        assert!(
            d.starts_with(&format!(
                "{} is one version folder of a model, not a base path — did you mean --model-base-path {}?",
                retrieval.join("1").display(),
                base.display()
            )),
            "{d}"
        );
        assert_eq!(
            model_dir_hint(&retrieval).unwrap(),
            format!(
                "{} is a model folder that holds versions: 1; pass a version folder, e.g. {}",
                retrieval.display(),
                retrieval.join("1").display()
            )
        );
        assert_eq!(model_dir_hint(&retrieval.join("1")), None);
        assert_eq!(
            model_dir_hint(&base).unwrap(),
            format!(
                "{0} holds models, not one model's files; pass a version folder: {0}/ranking/1 (ranking) or {0}/retrieval/1 (retrieval)",
                base.display()
            )
        );
    }

    #[test]
    fn empty_and_unloadable_base_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let b = tmp.path().display();
        assert!(scan(tmp.path()).diagnosis().unwrap().starts_with(&format!(
            "{b} holds no model folders. Expected {b}/<model name>/<integer version>/manifest.json"
        )));
        assert_eq!(model_dir_hint(tmp.path()), None);
        std::fs::create_dir_all(tmp.path().join("stuff").join("v1")).unwrap();
        assert!(scan(tmp.path()).diagnosis().unwrap().starts_with(&format!(
            "{b} holds stuff/ but no integer version folders inside them."
        )));
        std::fs::create_dir_all(tmp.path().join("m").join("1")).unwrap();
        let l = scan(tmp.path());
        assert_eq!(l.found_lines(), ["m (version 1: no manifest.json)"]);
        assert!(l.diagnosis().unwrap().starts_with(&format!(
            "no version of any model under {b} can be loaded: m (version 1: no manifest.json)."
        )));
    }

    #[test]
    fn not_found_messages_keep_tf_serving_wording_and_name_the_base_path() {
        let base = Path::new("models");
        assert_eq!(
            not_found_message(base, "retrieval", None, false, None, &[]),
            "Servable not found for request: Latest(retrieval). The model base path models has no model \"retrieval\" (expected models/retrieval/<version>); models loaded: none (the server log says at start-up what the path holds)"
        );
        assert_eq!(
            not_found_message(base, "nope", None, false, None, &["ranking", "retrieval"]),
            "Servable not found for request: Latest(nope). The model base path models has no model \"nope\" (expected models/nope/<version>); models loaded: ranking, retrieval"
        );
        assert_eq!(
            not_found_message(base, "ranking", Some(7), true, Some(2), &["ranking"]),
            "Servable not found for request: Specific(ranking, 7). Only the highest version is served: ranking version 2"
        );
        assert_eq!(
            not_found_message(base, "ranking", None, true, None, &[]),
            "Servable not found for request: Latest(ranking). Model \"ranking\" under models has no version that loaded (GET /v1/models/ranking lists each version's state and error)"
        );
    }
}
