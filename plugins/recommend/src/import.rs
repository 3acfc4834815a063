//! Reading events and items from files: CSV, TSV and JSON lines with a column mapping
//! (`user=userId,item=movieId,time=timestamp,weight=rating`), and MovieLens's layouts
//! (`u.data`: tab-separated without a header; `ratings.csv`: with one; `u.item`: `|`-separated
//! Latin-1). A row that cannot be read is skipped with its line number and why; the rest are
//! read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mediaflow_store::{Interaction, ItemRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A file's layout.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Layout {
    /// From the file name: `.jsonl`/`.ndjson`, `.tsv`, `u.data`, `u.item`, else CSV.
    #[default]
    Auto,
    /// Comma-separated with a header row (RFC 4180 quoting).
    Csv,
    /// Tab-separated with a header row.
    Tsv,
    /// One JSON object per line.
    Jsonl,
    /// MovieLens 100K `u.data`: `user TAB item TAB rating TAB unix_seconds`, no header.
    MovielensData,
    /// MovieLens `ratings.csv`: `userId,movieId,rating,timestamp` with a header.
    MovielensRatings,
    /// MovieLens 100K `u.item`: `id|title|release date|video date|url|19 genre flags`.
    MovielensItems,
}

impl Layout {
    /// The layout `Auto` means for `path`.
    pub fn resolve(self, path: &Path) -> Layout {
        if self != Layout::Auto {
            return self;
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if name == "u.data" || name.ends_with(".data") {
            Layout::MovielensData
        } else if name == "u.item" || name.ends_with(".item") {
            Layout::MovielensItems
        } else if name == "ratings.csv" {
            Layout::MovielensRatings
        } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
            Layout::Jsonl
        } else if name.ends_with(".tsv") || name.ends_with(".tab") {
            Layout::Tsv
        } else {
            Layout::Csv
        }
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("column mapping `{spec}`: {message}")]
    Map { spec: String, message: String },
    #[error("{path}: no column `{column}` for {field} ({available})")]
    Column {
        path: PathBuf,
        field: &'static str,
        column: String,
        available: String,
    },
}

/// A row that was not imported.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Skipped {
    /// 1-based line number in the file.
    pub line: u64,
    pub reason: String,
}

/// What a file held.
#[derive(Debug, Default)]
pub struct Imported<T> {
    pub rows: Vec<T>,
    pub skipped: Vec<Skipped>,
}

/// Which column holds each field: `field → column name` (or 1-based number for files
/// without a header).
pub type ColumnMap = HashMap<String, String>;

/// Parses `user=userId,item=movieId`.
pub fn parse_map(spec: &str) -> Result<ColumnMap, ImportError> {
    let mut map = ColumnMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((field, column)) = part.split_once('=') else {
            return Err(ImportError::Map {
                spec: spec.into(),
                message: format!("`{part}` is not FIELD=COLUMN"),
            });
        };
        let field = field.trim();
        if !EVENT_FIELDS.contains(&field) && !ITEM_FIELDS.contains(&field) {
            return Err(ImportError::Map {
                spec: spec.into(),
                message: format!(
                    "unknown field `{field}`: events have {}, items {}",
                    EVENT_FIELDS.join(", "),
                    ITEM_FIELDS.join(", ")
                ),
            });
        }
        map.insert(field.to_owned(), column.trim().to_owned());
    }
    Ok(map)
}

const EVENT_FIELDS: &[&str] = &["user", "item", "time", "weight", "kind"];
const ITEM_FIELDS: &[&str] = &["id", "title", "body", "published_at", "section", "tags"];

/// How to read an events file.
#[derive(Clone, Debug, Default)]
pub struct EventOptions {
    pub layout: Layout,
    pub map: ColumnMap,
    /// The kind of events without a `kind` column (`view`; `rating` for MovieLens).
    pub kind: Option<String>,
    /// Recorded with each event (the file name by default).
    pub source: Option<String>,
}

/// Parses a time: Unix seconds or milliseconds (numbers above 10^11 are milliseconds),
/// RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC). Returns Unix ms.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let ms = parse_time_any(s)?;
    // Reading events happen between 1970 and now; a day of slack for clocks ahead of ours.
    let latest = mediaflow_store::now_ms().saturating_add(86_400_000);
    if !(0..=latest).contains(&ms) {
        let shown = chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| format!("{ms} ms"));
        return Err(format!(
            "`{}` is {shown}, not a time between 1970 and now",
            s.trim()
        ));
    }
    Ok(ms)
}

/// Numbers at or above this are Unix ms, below it Unix seconds (1e11 s is the year 5138;
/// 1e11 ms is March 1973).
const MS_FROM: f64 = 100_000_000_000.0;

/// Parses an item's publication time: as [`parse_time`] but without its range check, since
/// a film or an archive story may be older than 1970, and a scheduled story may come out
/// after today.
pub fn parse_item_time(s: &str) -> Result<i64, String> {
    parse_time_any(s)
}

fn parse_time_any(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Ok(if n.unsigned_abs() >= MS_FROM as u64 {
            n
        } else {
            n.saturating_mul(1000)
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            // `as` saturates at i64's range.
            return Ok(if f.abs() >= MS_FROM {
                f as i64
            } else {
                (f * 1000.0) as i64
            });
        }
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    for fmt in ["%Y-%m-%d", "%d-%b-%Y"] {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, fmt) {
            if let Some(t) = d.and_hms_opt(0, 0, 0) {
                return Ok(t.and_utc().timestamp_millis());
            }
        }
    }
    Err(format!(
        "`{s}` is not a time (Unix seconds or ms, RFC 3339, or YYYY-MM-DD)"
    ))
}

fn parse_weight(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(w) if w.is_finite() && w >= 0.0 => Ok(w),
        Ok(w) => Err(format!("weight {w} is not a finite number ≥ 0")),
        Err(_) => Err(format!("weight `{}` is not a number", s.trim())),
    }
}

/// A row's fields, whatever the file's layout.
trait Fields {
    fn field(&self, column: &Column) -> Option<String>;
}

/// Where a field is: a delimited row's column, or the first of some keys a JSON object has.
#[derive(Clone, Debug)]
enum Column {
    Index(usize),
    Keys(Vec<String>),
}

/// How a file names its columns.
enum Header<'a> {
    /// JSON lines: each object by its keys.
    Keys,
    /// A delimited file without a header row: by 1-based number only.
    Numbers,
    /// A delimited file with this header row: by name, or by number.
    Row(&'a csv::StringRecord),
}

struct Delimited<'a> {
    record: &'a csv::StringRecord,
}

impl Fields for Delimited<'_> {
    fn field(&self, column: &Column) -> Option<String> {
        match column {
            Column::Index(i) => self.record.get(*i).map(|s| s.trim().to_owned()),
            Column::Keys(_) => None,
        }
    }
}

impl Fields for serde_json::Map<String, Value> {
    fn field(&self, column: &Column) -> Option<String> {
        let Column::Keys(keys) = column else {
            return None;
        };
        match keys.iter().find_map(|k| self.get(k))? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| v.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join("|"),
            ),
            v => Some(v.to_string()),
        }
    }
}

/// Resolves each field to a column of `header` (or a 1-based number without one).
fn columns(
    path: &Path,
    map: &ColumnMap,
    defaults: &[(&'static str, &[&str])],
    header: Header,
    required: &[&'static str],
) -> Result<HashMap<&'static str, Column>, ImportError> {
    let mut out = HashMap::new();
    for (field, names) in defaults {
        let mapped = map.get(*field);
        let column = match &header {
            Header::Keys => Some(Column::Keys(match mapped {
                Some(m) => vec![m.clone()],
                None => names.iter().map(|n| (*n).to_owned()).collect(),
            })),
            Header::Numbers => match mapped {
                Some(m) => match m.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => Some(Column::Index(n - 1)),
                    _ => {
                        return Err(ImportError::Map {
                            spec: format!("{field}={m}"),
                            message: format!(
                                "{} has no header row, so its columns are numbered from 1: \
                                 map {field} to a number",
                                path.display()
                            ),
                        })
                    }
                },
                None => None,
            },
            Header::Row(h) => {
                let find = |name: &str| h.iter().position(|c| c.trim() == name);
                match mapped {
                    Some(m) => match find(m)
                        .or_else(|| m.parse::<usize>().ok().filter(|n| *n >= 1).map(|n| n - 1))
                    {
                        Some(i) => Some(Column::Index(i)),
                        None => {
                            return Err(ImportError::Column {
                                path: path.to_owned(),
                                field,
                                column: m.clone(),
                                available: format!(
                                    "the header has: {}",
                                    h.iter().collect::<Vec<_>>().join(", ")
                                ),
                            })
                        }
                    },
                    None => names.iter().find_map(|n| find(n)).map(Column::Index),
                }
            }
        };
        match column {
            Some(c) => {
                out.insert(*field, c);
            }
            None if required.contains(field) => {
                return Err(ImportError::Column {
                    path: path.to_owned(),
                    field,
                    column: names.join(" or "),
                    available: match &header {
                        Header::Row(h) => {
                            format!(
                                "the header has: {}",
                                h.iter().collect::<Vec<_>>().join(", ")
                            )
                        }
                        _ => "the file has no header row: map it to a column number".into(),
                    },
                })
            }
            None => {}
        }
    }
    Ok(out)
}

const EVENT_DEFAULTS: &[(&str, &[&str])] = &[
    ("user", &["user", "user_id", "userId"]),
    ("item", &["item", "item_id", "itemId", "movieId", "article"]),
    ("time", &["time", "ts", "timestamp"]),
    ("weight", &["weight", "rating", "value"]),
    ("kind", &["kind", "event", "type"]),
];

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Called per row with its line, the resolved columns and its fields.
type Each<'a> =
    dyn FnMut(u64, &HashMap<&'static str, Column>, &dyn Fields) -> Result<(), String> + 'a;

/// Reads the rows of a delimited or JSON-lines file: `each(line, fields)` is called per
/// row; `progress(bytes)` as the file is read.
fn rows(
    path: &Path,
    layout: Layout,
    map: &ColumnMap,
    defaults: &[(&'static str, &[&str])],
    required: &[&'static str],
    progress: &mut dyn FnMut(u64),
    each: &mut Each,
) -> Result<Vec<Skipped>, ImportError> {
    let mut skipped = Vec::new();
    if layout == Layout::Jsonl {
        let text = std::fs::read(path).map_err(io(path))?;
        let cols = columns(path, map, defaults, Header::Keys, required)?;
        let mut offset = 0u64;
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            offset += line.len() as u64 + 1;
            let line_no = n as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = std::str::from_utf8(line)
                .map_err(|e| format!("not UTF-8: {e}"))
                .and_then(|l| {
                    serde_json::from_str::<serde_json::Map<String, Value>>(l)
                        .map_err(|e| format!("not a JSON object: {e}"))
                });
            let done = parsed.and_then(|obj| each(line_no, &cols, &obj));
            if let Err(reason) = done {
                skipped.push(Skipped {
                    line: line_no,
                    reason,
                });
            }
            if n.is_multiple_of(4096) {
                progress(offset);
            }
        }
        progress(offset);
        return Ok(skipped);
    }
    let (delimiter, header) = match layout {
        Layout::Tsv => (b'\t', true),
        Layout::MovielensData => (b'\t', false),
        Layout::MovielensItems => (b'|', false),
        _ => (b',', true),
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(header)
        .flexible(true)
        .from_path(path)
        .map_err(|e| ImportError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let cols = if header {
        let h = reader
            .headers()
            .map_err(|e| ImportError::Io {
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?
            .clone();
        columns(path, map, defaults, Header::Row(&h), required)?
    } else {
        columns(path, map, defaults, Header::Numbers, required)?
    };
    let mut record = csv::StringRecord::new();
    let mut n = 0u64;
    loop {
        let line = reader.position().line() + u64::from(n == 0 && header);
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(line);
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                if let Err(reason) = each(line, &cols, &Delimited { record: &record }) {
                    skipped.push(Skipped { line, reason });
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(line);
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(ImportError::Io {
                        path: path.to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
                skipped.push(Skipped {
                    line,
                    reason: e.to_string(),
                });
            }
        }
        n += 1;
        if n.is_multiple_of(4096) {
            progress(reader.position().byte());
        }
    }
    progress(reader.position().byte());
    Ok(skipped)
}

fn required(
    cols: &HashMap<&'static str, Column>,
    row: &dyn Fields,
    field: &str,
) -> Result<String, String> {
    cols.get(field)
        .and_then(|c| row.field(c))
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("no {field}"))
}

fn optional(cols: &HashMap<&'static str, Column>, row: &dyn Fields, field: &str) -> Option<String> {
    cols.get(field)
        .and_then(|c| row.field(c))
        .filter(|v| !v.is_empty())
}

/// Reads the events of `path`.
pub fn read_events(
    path: &Path,
    options: &EventOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<Imported<Interaction>, ImportError> {
    let layout = options.layout.resolve(path);
    let mut map = options.map.clone();
    let mut kind = options.kind.clone();
    match layout {
        Layout::MovielensData => {
            for (f, c) in [("user", "1"), ("item", "2"), ("weight", "3"), ("time", "4")] {
                map.entry(f.into()).or_insert_with(|| c.into());
            }
            kind.get_or_insert_with(|| "rating".into());
        }
        Layout::MovielensRatings => {
            for (f, c) in [
                ("user", "userId"),
                ("item", "movieId"),
                ("weight", "rating"),
                ("time", "timestamp"),
            ] {
                map.entry(f.into()).or_insert_with(|| c.into());
            }
            kind.get_or_insert_with(|| "rating".into());
        }
        _ => {}
    }
    let kind = kind.unwrap_or_else(|| "view".into());
    let source = options
        .source
        .clone()
        .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut events = Vec::new();
    let skipped = rows(
        path,
        layout,
        &map,
        EVENT_DEFAULTS,
        &["user", "item", "time"],
        progress,
        &mut |_, cols, row| {
            let user = required(cols, row, "user")?;
            let item = required(cols, row, "item")?;
            let ts = parse_time(&required(cols, row, "time")?)?;
            let weight = match optional(cols, row, "weight") {
                Some(w) => parse_weight(&w)?,
                None => 1.0,
            };
            let kind = optional(cols, row, "kind").unwrap_or_else(|| kind.clone());
            events.push(Interaction {
                user,
                item,
                kind,
                ts,
                weight,
                source: source.clone(),
            });
            Ok(())
        },
    )?;
    Ok(Imported {
        rows: events,
        skipped,
    })
}

const ITEM_DEFAULTS: &[(&str, &[&str])] = &[
    ("id", &["id", "item", "item_id", "movieId"]),
    ("title", &["title", "headline", "name"]),
    ("body", &["body", "text", "summary", "content"]),
    ("published_at", &["published_at", "published", "date"]),
    ("section", &["section", "category"]),
    ("tags", &["tags", "genres"]),
];

/// Splits a tags field: a JSON array, or names separated by `|`, `;` or `,`.
fn split_tags(s: &str) -> Vec<String> {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(s) {
        return v;
    }
    s.split(['|', ';', ','])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads the items of `path`. MovieLens's `u.item` gets its genres from `u.genre` beside it.
pub fn read_items(
    path: &Path,
    layout: Layout,
    map: &ColumnMap,
) -> Result<Imported<ItemRecord>, ImportError> {
    let layout = layout.resolve(path);
    if layout == Layout::MovielensItems {
        return read_movielens_items(path);
    }
    let mut items = Vec::new();
    let skipped = rows(
        path,
        layout,
        map,
        ITEM_DEFAULTS,
        &["id"],
        &mut |_| {},
        &mut |_, cols, row| {
            let published_at = optional(cols, row, "published_at")
                .map(|t| parse_item_time(&t))
                .transpose()?;
            items.push(ItemRecord {
                id: required(cols, row, "id")?,
                title: optional(cols, row, "title"),
                body: optional(cols, row, "body"),
                published_at,
                section: optional(cols, row, "section"),
                tags: optional(cols, row, "tags")
                    .map(|t| split_tags(&t))
                    .unwrap_or_default(),
            });
            Ok(())
        },
    )?;
    Ok(Imported {
        rows: items,
        skipped,
    })
}

/// Latin-1 to text: each byte is its code point.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

fn read_movielens_items(path: &Path) -> Result<Imported<ItemRecord>, ImportError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let genre_path = path.with_file_name("u.genre");
    let genres: Vec<String> = std::fs::read(&genre_path)
        .map(|b| {
            latin1(&b)
                .lines()
                .filter_map(|l| l.split_once('|').map(|(name, _)| name.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut out = Imported::default();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line_no = n as u64 + 1;
        let text = latin1(line);
        let text = text.trim_end_matches('\r');
        if text.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split('|').collect();
        if fields.len() < 5 || fields[0].trim().is_empty() {
            out.skipped.push(Skipped {
                line: line_no,
                reason: format!(
                    "expected id|title|release date|video date|url|genre flags, got {} fields",
                    fields.len()
                ),
            });
            continue;
        }
        let tags = fields[5..]
            .iter()
            .enumerate()
            .filter(|(_, f)| f.trim() == "1")
            .map(|(i, _)| {
                genres
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("genre {i}"))
            })
            .collect();
        out.rows.push(ItemRecord {
            id: fields[0].trim().to_owned(),
            title: Some(fields[1].trim().to_owned()).filter(|t| !t.is_empty()),
            body: None,
            published_at: parse_item_time(fields[2]).ok(),
            section: None,
            tags,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_accepted_form() {
        assert_eq!(parse_time("881250949"), Ok(881_250_949_000));
        assert_eq!(parse_time("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("01-Jan-1970"), Ok(0));
        assert!(parse_time("yesterday").is_err());
        // Floats follow the same seconds/ms rule as integers.
        assert_eq!(parse_time("881250949.5"), Ok(881_250_949_500));
        assert_eq!(parse_time("1700000000123.0"), Ok(1_700_000_000_123));
        // Before 1970, far in the future, or past i64: refused, not wrapped.
        for bad in [
            "-1",
            "-9223372036854775808",
            "9223372036854775807",
            "1e300",
            "3000-01-01",
        ] {
            let err = parse_time(bad).unwrap_err();
            assert!(err.contains("between 1970 and now"), "{bad}: {err}");
        }
        // Items may be older than 1970 (MovieLens has films from the 1920s) or scheduled.
        assert_eq!(parse_item_time("01-Jan-1926"), Ok(-1_388_534_400_000));
        assert_eq!(parse_item_time("2100-01-01"), Ok(4_102_444_800_000));
    }

    #[test]
    fn a_map_names_known_fields_only() {
        let m = parse_map("user=userId, item=movieId,time=timestamp").unwrap();
        assert_eq!(m["item"], "movieId");
        assert!(parse_map("user").is_err());
        assert!(parse_map("colour=red").is_err());
    }
}
