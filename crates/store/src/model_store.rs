//! The store's folder: `<root>/models/<name's folder>/{manifest.json, FILE.gguf}`.
//!
//! A model becomes visible only when its manifest exists, and the manifest is written last, by
//! an atomic rename, after the file itself was renamed into place: a half-written download is
//! never listed or resolved. Every path handed out is checked to be a regular file (not a
//! symbolic link) under the root.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::manifest::Manifest;
use crate::model_name::ModelName;

const MODELS_DIR: &str = "models";
const MANIFEST_FILE: &str = "manifest.json";

/// One model in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredModel {
    pub name: ModelName,
    pub manifest: Manifest,
    /// The GGUF file.
    pub path: PathBuf,
}

/// The local model store.
#[derive(Clone, Debug)]
pub struct ModelStore {
    root: PathBuf,
}

impl ModelStore {
    /// The store under `root` (created on first install).
    pub fn new(root: impl Into<PathBuf>) -> ModelStore {
        ModelStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn models_dir(&self) -> PathBuf {
        self.root.join(MODELS_DIR)
    }

    fn model_dir(&self, name: &ModelName) -> PathBuf {
        self.models_dir().join(name.relative_dir())
    }

    /// The stored model `name`.
    pub fn get(&self, name: &ModelName) -> Result<StoredModel> {
        let dir = self.model_dir(name);
        let manifest_path = dir.join(MANIFEST_FILE);
        let not_found = || StoreError::NotFound { name: name.to_string(), root: self.root.clone() };
        if !dir.exists() {
            return Err(not_found());
        }
        // A folder on the way may be a symbolic link: what it resolves to must still be ours.
        let models_dir = self.models_dir();
        let canonical_models =
            models_dir.canonicalize().map_err(StoreError::io("cannot open", &models_dir))?;
        let canonical_dir = dir.canonicalize().map_err(StoreError::io("cannot open", &dir))?;
        if !canonical_dir.starts_with(&canonical_models) {
            return Err(StoreError::OutsideStore { path: dir });
        }
        let text = match fs::read_to_string(&manifest_path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
            Err(error) => return Err(StoreError::io("cannot read", &manifest_path)(error)),
        };
        let manifest: Manifest = serde_json::from_str(&text).map_err(|error| {
            StoreError::BadManifest { path: manifest_path.clone(), reason: error.to_string() }
        })?;
        // The manifest names a file of the model's own folder, nothing else.
        let file_name_ok = Path::new(&manifest.file)
            .file_name()
            .is_some_and(|file| file == manifest.file.as_str() && manifest.file != "..");
        if !file_name_ok {
            return Err(StoreError::BadManifest {
                path: manifest_path,
                reason: format!("file {:?} is not a plain file name", manifest.file),
            });
        }
        let path = dir.join(&manifest.file);
        check_regular_file(&path)?;
        Ok(StoredModel { name: name.clone(), manifest, path })
    }

    /// The GGUF file of the stored model `name`.
    pub fn resolve(&self, name: &ModelName) -> Result<PathBuf> {
        self.get(name).map(|model| model.path)
    }

    /// Every stored model, sorted by name. Folders without a valid manifest are skipped (an
    /// interrupted download, or something that is not a model).
    pub fn list(&self) -> Result<Vec<StoredModel>> {
        let mut models = Vec::new();
        let root = self.models_dir();
        if !root.exists() {
            return Ok(models);
        }
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            for entry in fs::read_dir(&dir).map_err(StoreError::io("cannot list", &dir))? {
                let entry = entry.map_err(StoreError::io("cannot list", &dir))?;
                let kind =
                    entry.file_type().map_err(StoreError::io("cannot inspect", entry.path()))?;
                if kind.is_dir() {
                    pending.push(entry.path());
                } else if kind.is_file() && entry.file_name() == MANIFEST_FILE {
                    let relative = dir.strip_prefix(&root).unwrap_or(&dir);
                    if let Some(model) = self.model_at(relative) {
                        models.push(model);
                    }
                }
            }
        }
        models.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(models)
    }

    /// The model whose folder is `relative` (under `models`), if it is a valid one.
    fn model_at(&self, relative: &Path) -> Option<StoredModel> {
        let parts: Vec<&str> = relative.iter().map(|part| part.to_str()).collect::<Option<_>>()?;
        let (tag, base) = parts.split_last()?;
        let name = ModelName::parse(&format!("{}:{tag}", base.join("/"))).ok()?;
        self.get(&name).ok()
    }

    /// Removes the stored model `name` (its folder), and any folders left empty above it.
    pub fn remove(&self, name: &ModelName) -> Result<StoredModel> {
        let model = self.get(name)?;
        let dir = self.model_dir(name);
        fs::remove_dir_all(&dir).map_err(StoreError::io("cannot remove", &dir))?;
        let models_dir = self.models_dir();
        let mut parent = dir.parent();
        while let Some(folder) = parent.filter(|folder| *folder != models_dir) {
            // Fails (and stops) at the first folder that still holds something.
            if fs::remove_dir(folder).is_err() {
                break;
            }
            parent = folder.parent();
        }
        Ok(model)
    }

    /// Where a download of `name` should write before [`ModelStore::install`]: a hidden partial
    /// file in the model's folder (kept between attempts so a download can resume).
    pub fn partial_path(&self, name: &ModelName, file: &str) -> Result<PathBuf> {
        let dir = self.model_dir(name);
        fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
        Ok(dir.join(format!(".{file}.partial")))
    }

    /// Moves the complete file `partial` into place as `manifest.file` and then writes the
    /// manifest, each by an atomic rename: the model appears whole or not at all.
    pub fn install(
        &self,
        name: &ModelName,
        partial: &Path,
        manifest: &Manifest,
    ) -> Result<StoredModel> {
        let dir = self.model_dir(name);
        fs::create_dir_all(&dir).map_err(StoreError::io("cannot create", &dir))?;
        let target = dir.join(&manifest.file);
        fs::rename(partial, &target).map_err(StoreError::io("cannot move into place", &target))?;
        let manifest_path = dir.join(MANIFEST_FILE);
        let temporary = dir.join(".manifest.json.partial");
        let text = serde_json::to_string_pretty(manifest).map_err(|error| {
            StoreError::BadManifest { path: manifest_path.clone(), reason: error.to_string() }
        })?;
        fs::write(&temporary, text).map_err(StoreError::io("cannot write", &temporary))?;
        fs::rename(&temporary, &manifest_path)
            .map_err(StoreError::io("cannot write", &manifest_path))?;
        self.get(name)
    }
}

/// Refuses anything but a regular file: a symbolic link could point anywhere.
fn check_regular_file(path: &Path) -> Result<()> {
    let metadata = fs::symlink_metadata(path).map_err(StoreError::io("cannot open", path))?;
    if metadata.file_type().is_file() {
        Ok(())
    } else {
        Err(StoreError::NotARegularFile { path: path.to_owned() })
    }
}
