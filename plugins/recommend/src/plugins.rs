//! The workflow steps: `events.record`, `events.import`, `recommend.train` and
//! `recommend.rank`. They run in the engine's process and reach the run database through the
//! context's host extension (the engine adds its `Store`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use mediaflow_plugin_api::{
    typed, ArtifactRef, ConfigIssue, Descriptor, JsonSchema, Plugin, PluginError, RunContext,
    TypedPlugin,
};
use mediaflow_store::{Interaction, ItemRecord, RecommendationRow, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::data::{Dataset, KindWeights, DAY_MS};
use crate::import::{read_events, read_items, EventOptions, Layout, Skipped};
use crate::model::{
    AlsParams, ContentParams, HybridParams, ItemKnnParams, ModelKind, PopularityParams,
    Recommendation, Recommender, TrainConfig,
};

/// The recommender's plugins.
pub fn plugins() -> Vec<Arc<dyn Plugin>> {
    vec![
        typed(EventsRecord::new()),
        typed(EventsImport::new()),
        typed(RecommendTrain::new()),
        typed(RecommendRank::new()),
    ]
}

fn store(cx: &RunContext) -> Result<Store, PluginError> {
    cx.extension::<Store>().cloned().ok_or_else(|| {
        PluginError::new(
            "no_database",
            "this step needs the run database, which only mediaflow's engine gives its \
             built-in plugins",
        )
    })
}

fn blocking_failed(e: tokio::task::JoinError) -> PluginError {
    PluginError::new("panic", format!("the computation failed: {e}"))
}

// ---------------------------------------------------------------------------------------
// events.record

/// One event to record.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    pub user: String,
    pub item: String,
    /// `view` (default), `click`, `like`, `share`, `dwell` or any word.
    #[serde(default = "view")]
    pub kind: String,
    /// A rating, seconds of dwell time… (default 1).
    #[serde(default)]
    pub weight: Option<f64>,
    /// When: Unix seconds or ms, or RFC 3339 (default: now).
    #[serde(default)]
    pub time: Option<Value>,
}

fn view() -> String {
    "view".into()
}

/// Settings of `events.record`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// The events: `[{user, item, kind, weight, time}]`.
    pub events: Vec<EventIn>,
}

/// What `events.record` stored.
#[derive(Serialize, JsonSchema)]
pub struct RecordOutput {
    /// Events that were new.
    pub added: u64,
    /// Events already stored (same user, item, kind and time).
    pub duplicates: u64,
}

/// `events.record`: stores reading events from a workflow.
pub struct EventsRecord(Descriptor);

impl EventsRecord {
    pub fn new() -> Self {
        EventsRecord(
            Descriptor::from_config::<RecordConfig>(
                "events.record",
                "1.0.0",
                "Record reading events (user, item, kind, weight, time) for the recommender",
            )
            .inputs(["events"])
            .outputs_from::<RecordOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for EventsRecord {
    fn default() -> Self {
        Self::new()
    }
}

fn to_interaction(
    e: &EventIn,
    index: usize,
    now: i64,
    source: &str,
) -> Result<Interaction, PluginError> {
    let bad = |m: String| PluginError::new("invalid_event", format!("events[{index}]: {m}"));
    if e.user.trim().is_empty() || e.item.trim().is_empty() {
        return Err(bad("`user` and `item` must not be empty".into()));
    }
    let ts = match &e.time {
        None | Some(Value::Null) => now,
        Some(Value::String(s)) => crate::import::parse_time(s).map_err(bad)?,
        Some(v) => crate::import::parse_time(&v.to_string()).map_err(bad)?,
    };
    let weight = e.weight.unwrap_or(1.0);
    if !weight.is_finite() || weight < 0.0 {
        return Err(bad(format!("weight {weight} is not a finite number ≥ 0")));
    }
    Ok(Interaction {
        user: e.user.clone(),
        item: e.item.clone(),
        kind: e.kind.clone(),
        ts,
        weight,
        source: Some(source.to_owned()),
    })
}

#[async_trait::async_trait]
impl TypedPlugin for EventsRecord {
    type Config = RecordConfig;
    type Output = RecordOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: RecordConfig, cx: &RunContext) -> Result<RecordOutput, PluginError> {
        let store = store(cx)?;
        let now = mediaflow_store::now_ms();
        let source = format!("run {}", cx.run_id);
        let events = c
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| to_interaction(e, i, now, &source))
            .collect::<Result<Vec<_>, _>>()?;
        let added = store.insert_interactions(&events).await?;
        Ok(RecordOutput {
            added,
            duplicates: events.len() as u64 - added,
        })
    }
}

// ---------------------------------------------------------------------------------------
// events.import

/// Settings of `events.import`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// An events file: CSV, TSV, JSON lines, MovieLens `u.data` or `ratings.csv`.
    #[serde(default)]
    pub events: Option<String>,
    /// The events file's layout (default: from its name).
    #[serde(default)]
    pub layout: Layout,
    /// Which column holds each field: `{user: userId, item: movieId, time: timestamp,
    /// weight: rating, kind: event}` (names, or 1-based numbers without a header).
    #[serde(default)]
    pub map: HashMap<String, String>,
    /// The kind of events whose file has no kind column (default `view`).
    #[serde(default)]
    pub kind: Option<String>,
    /// An items file: `id`, `title`, `body`, `published_at`, `section`, `tags`.
    #[serde(default)]
    pub items: Option<String>,
    /// The items file's layout (default: from its name).
    #[serde(default)]
    pub items_layout: Layout,
    /// Only read below this directory (inside MEDIAFLOW_FILES_ROOT, if that is set).
    #[serde(default)]
    pub root: Option<String>,
}

/// An item whose text is new or changed: what to embed.
#[derive(Serialize, JsonSchema)]
pub struct ItemText {
    pub id: String,
    /// Title and body.
    pub text: String,
}

/// What `events.import` did.
#[derive(Serialize, JsonSchema)]
pub struct ImportOutput {
    /// Events that were new.
    pub added: u64,
    /// Events already stored.
    pub duplicates: u64,
    /// Rows not imported, with their line numbers (the first 100).
    pub skipped: Vec<Skipped>,
    pub skipped_count: usize,
    /// Items new or changed.
    pub items_changed: usize,
    /// The new or changed items that have text, for `text.embed`.
    pub changed_items: Vec<ItemText>,
}

/// `events.import`: loads an events file and an items file into the store, idempotently.
pub struct EventsImport(Descriptor);

impl EventsImport {
    pub fn new() -> Self {
        EventsImport(
            Descriptor::from_config::<ImportConfig>(
                "events.import",
                "1.0.0",
                "Import reading events and items from CSV, TSV, JSON lines or MovieLens files",
            )
            .inputs(["events", "items"])
            .outputs_from::<ImportOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for EventsImport {
    fn default() -> Self {
        Self::new()
    }
}

fn import_failed(e: crate::import::ImportError) -> PluginError {
    let io = matches!(e, crate::import::ImportError::Io { .. });
    let err = PluginError::new("import", e.to_string());
    if io {
        err
    } else {
        err.with_help(
            "map the file's columns with `map: {user: COLUMN, item: COLUMN, time: COLUMN}`",
        )
    }
}

/// The text an item is embedded from.
pub fn item_text(it: &ItemRecord) -> Option<String> {
    let parts: Vec<&str> = [it.title.as_deref(), it.body.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(". "))
}

/// Stores `items`, returning those that were new or changed.
pub async fn store_items(
    store: &Store,
    items: Vec<ItemRecord>,
) -> Result<Vec<ItemRecord>, StoreError> {
    let before: HashMap<String, ItemRecord> = store
        .items()
        .await?
        .into_iter()
        .map(|i| (i.id.clone(), i))
        .collect();
    let mut seen = HashSet::new();
    let changed: Vec<ItemRecord> = items
        .into_iter()
        .rev()
        .filter(|i| seen.insert(i.id.clone()))
        .filter(|i| before.get(&i.id) != Some(i))
        .collect();
    store.upsert_items(&changed).await?;
    Ok(changed)
}

#[async_trait::async_trait]
impl TypedPlugin for EventsImport {
    type Config = ImportConfig;
    type Output = ImportOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    fn check(&self, c: &ImportConfig) -> Vec<ConfigIssue> {
        let mut issues = Vec::new();
        if c.events.is_none() && c.items.is_none() {
            issues.push(ConfigIssue::new("", "give `events:`, `items:` or both"));
        }
        for key in c.map.keys() {
            if crate::import::parse_map(&format!("{key}=x")).is_err() {
                issues.push(
                    ConfigIssue::new("/map", format!("unknown field `{key}`"))
                        .with_help("fields are user, item, time, weight, kind"),
                );
            }
        }
        issues
    }

    async fn run(&self, c: ImportConfig, cx: &RunContext) -> Result<ImportOutput, PluginError> {
        let store = store(cx)?;
        let root = c.root.clone();
        let confine = |p: &str| mediaflow_builtin::confine(p, root.as_deref());
        let events_path = c.events.as_deref().map(confine).transpose()?;
        let items_path = c.items.as_deref().map(confine).transpose()?;
        let options = EventOptions {
            layout: c.layout,
            map: c.map.clone(),
            kind: c.kind.clone(),
            source: None,
        };
        let items_layout = c.items_layout;
        let (events, items) = tokio::task::spawn_blocking(move || {
            let events = events_path
                .map(|p| read_events(&p, &options, &mut |_| {}))
                .transpose()?;
            let items = items_path
                .map(|p| read_items(&p, items_layout, &HashMap::new()))
                .transpose()?;
            Ok::<_, crate::import::ImportError>((events, items))
        })
        .await
        .map_err(blocking_failed)?
        .map_err(import_failed)?;
        let mut skipped = Vec::new();
        let mut out = ImportOutput {
            added: 0,
            duplicates: 0,
            skipped: Vec::new(),
            skipped_count: 0,
            items_changed: 0,
            changed_items: Vec::new(),
        };
        if let Some(items) = items {
            skipped.extend(items.skipped);
            let changed = store_items(&store, items.rows).await?;
            out.items_changed = changed.len();
            out.changed_items = changed
                .iter()
                .filter_map(|i| {
                    Some(ItemText {
                        id: i.id.clone(),
                        text: item_text(i)?,
                    })
                })
                .collect();
        }
        if let Some(events) = events {
            skipped.extend(events.skipped);
            out.added = store.insert_interactions(&events.rows).await?;
            out.duplicates = events.rows.len() as u64 - out.added;
        }
        for s in skipped.iter().take(20) {
            cx.warn(&format!("line {}: {} (skipped)", s.line, s.reason));
        }
        out.skipped_count = skipped.len();
        skipped.truncate(100);
        out.skipped = skipped;
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// recommend.train

/// Settings of `recommend.train`: the model and its hyper-parameters.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainSettings {
    /// `hybrid` (default), `als`, `itemknn`, `content` or `popularity`.
    #[serde(default)]
    pub model: ModelKind,
    #[serde(default)]
    pub popularity: PopularityParams,
    #[serde(default)]
    pub itemknn: ItemKnnParams,
    #[serde(default)]
    pub als: AlsParams,
    #[serde(default)]
    pub content: ContentParams,
    #[serde(default)]
    pub hybrid: HybridParams,
    /// How much each kind of event counts: `{view: 1, like: 3, share: 5}`.
    #[serde(default)]
    pub kind_weights: KindWeights,
    /// The embedding collection of the items' text (`text.embed` with `store:`, ids = item
    /// ids) for the content model. Without it, content is sections and tags.
    #[serde(default)]
    pub collection: Option<String>,
    /// Learn from the last this many days of events only.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub since_days: Option<f64>,
}

/// What `recommend.train` made.
#[derive(Serialize, JsonSchema)]
pub struct TrainOutput {
    /// The trained model (give it to `recommend.rank`).
    pub model: ArtifactRef,
    /// `hybrid-20261205T020000Z-12000`.
    pub version: String,
    pub kind: ModelKind,
    /// Events learnt from (one per user and item).
    pub events: usize,
    pub users: usize,
    pub items: usize,
    pub train_seconds: f64,
}

/// `recommend.train`: trains a recommender on the stored events.
pub struct RecommendTrain(Descriptor);

impl RecommendTrain {
    pub fn new() -> Self {
        RecommendTrain(
            Descriptor::from_config::<TrainSettings>(
                "recommend.train",
                "1.0.0",
                "Train a recommender (popularity, item-item CF, ALS, content or hybrid) on the stored events",
            )
            .outputs_from::<TrainOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for RecommendTrain {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl TypedPlugin for RecommendTrain {
    type Config = TrainSettings;
    type Output = TrainOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: TrainSettings, cx: &RunContext) -> Result<TrainOutput, PluginError> {
        let store = store(cx)?;
        let now = mediaflow_store::now_ms();
        // `as` saturates a huge or infinite float; the subtraction saturates too.
        let since = c
            .since_days
            .map(|d| now.saturating_sub((d * DAY_MS) as i64));
        let events = store.interactions(since).await?;
        if events.is_empty() {
            return Err(
                PluginError::new("no_events", "there are no reading events to learn from")
                    .with_help(
                    "import some with `mediaflow events import FILE` or an `events.import` step",
                ),
            );
        }
        let items = store.items().await?;
        let text: HashMap<String, Vec<f32>> = match &c.collection {
            Some(col) => store.embeddings_all(col).await?.into_iter().collect(),
            None => HashMap::new(),
        };
        if c.collection.is_some() && text.is_empty() {
            cx.warn("the embedding collection is empty: content uses sections and tags only");
        }
        let config = TrainConfig {
            model: c.model,
            popularity: c.popularity,
            itemknn: c.itemknn,
            als: c.als,
            content: c.content,
            hybrid: c.hybrid,
            kind_weights: c.kind_weights,
        };
        cx.info(&format!(
            "training {} on {} events",
            config.model,
            events.len()
        ));
        let started = std::time::Instant::now();
        let cancel = cx.cancel_token().clone();
        let (model, bytes) = tokio::task::spawn_blocking(move || {
            let data = Dataset::new(&events, &items, &config.kind_weights);
            let stop = || cancel.is_cancelled();
            let model = Recommender::train_until(&data, &config, &text, now, &stop)?;
            let bytes = model.to_bytes()?;
            Ok::<_, crate::model::RecommendError>((model, bytes))
        })
        .await
        .map_err(blocking_failed)?
        .map_err(|e| PluginError::new("model", e.to_string()))?;
        let train_seconds = started.elapsed().as_secs_f64();
        let name = format!("{}.mfrec", model.version);
        let artifact = cx
            .artifacts()
            .put_bytes(&bytes, "application/x-mediaflow-recommender", Some(&name))
            .await?;
        Ok(TrainOutput {
            model: artifact,
            version: model.version.clone(),
            kind: model.model.kind(),
            events: model.events,
            users: model.users.len(),
            items: model.items.len(),
            train_seconds,
        })
    }
}

// ---------------------------------------------------------------------------------------
// recommend.rank

/// Settings of `recommend.rank`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RankConfig {
    /// A model from `recommend.train`.
    pub model: ArtifactRef,
    /// The users to rank for (default: every user the model knows). Users it does not know
    /// get fresh popular items.
    #[serde(default)]
    pub users: Option<Vec<String>>,
    /// "More like this": items like this one, instead of users' lists.
    #[serde(default)]
    pub item: Option<String>,
    /// Items per list.
    #[serde(default = "twenty")]
    #[schemars(range(min = 1, max = 1000))]
    pub k: usize,
    /// Write each user's list to the `recommendations` table.
    #[serde(default)]
    pub save: bool,
    /// Return the lists as the step's output (default: when there are at most 1,000).
    #[serde(default)]
    pub output: Option<bool>,
}

fn twenty() -> usize {
    20
}

/// One user's list.
#[derive(Serialize, JsonSchema)]
pub struct UserList {
    pub user: String,
    pub items: Vec<Recommendation>,
}

/// What `recommend.rank` returns.
#[derive(Serialize, JsonSchema)]
pub struct RankOutput {
    pub version: String,
    /// Lists made.
    pub users: usize,
    /// Rows written to the `recommendations` table.
    pub saved: usize,
    /// The lists (unless `output: false`, or more than 1,000 without `output: true`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recommendations: Vec<UserList>,
    /// With `item:`: the items like it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub similar: Option<Vec<Recommendation>>,
}

/// `recommend.rank`: each user's top k, with reasons, or "more like this".
pub struct RecommendRank(Descriptor);

impl RecommendRank {
    pub fn new() -> Self {
        RecommendRank(
            Descriptor::from_config::<RankConfig>(
                "recommend.rank",
                "1.0.0",
                "Rank items for users (or items like an item) with a trained recommender, with reasons",
            )
            .inputs(["model", "users", "item"])
            .outputs_from::<RankOutput>()
            .not_cacheable(),
        )
    }
}

impl Default for RecommendRank {
    fn default() -> Self {
        Self::new()
    }
}

/// Each user's list, leaving out what they have read: the model's history of them and
/// `read`, every item the store holds an event of theirs for (of any kind, weight or time,
/// so also what they read since training and kinds the model gave no weight).
fn rank_users(
    model: &Recommender,
    users: &[String],
    read: &HashMap<String, Vec<String>>,
    k: usize,
) -> Vec<UserList> {
    use rayon::prelude::*;
    users
        .par_iter()
        .map(|user| {
            let later: Vec<u32> = read
                .get(user)
                .map(|items| items.iter().filter_map(|i| model.items.get(i)).collect())
                .unwrap_or_default();
            let items = if later.is_empty() {
                model.recommend(user, k)
            } else {
                model.recommend_excluding(user, k, &later)
            };
            UserList {
                user: user.clone(),
                items,
            }
        })
        .collect()
}

#[async_trait::async_trait]
impl TypedPlugin for RecommendRank {
    type Config = RankConfig;
    type Output = RankOutput;

    fn descriptor(&self) -> &Descriptor {
        &self.0
    }

    async fn run(&self, c: RankConfig, cx: &RunContext) -> Result<RankOutput, PluginError> {
        let path = cx.artifacts().path(&c.model).await?;
        let bytes = tokio::fs::read(&path).await.map_err(|e| {
            PluginError::new(
                "io",
                format!("cannot read the model {}: {e}", path.display()),
            )
        })?;
        // Decoding a large model and ranking are CPU work: off the async threads.
        let shown = path.display().to_string();
        let model = tokio::task::spawn_blocking(move || Recommender::from_bytes(&bytes))
            .await
            .map_err(blocking_failed)?
            .map_err(|e| PluginError::new("model", format!("{shown}: {e}")))?;
        let model = Arc::new(model);
        if let Some(item) = c.item.clone() {
            let (m, k) = (model.clone(), c.k);
            let similar = tokio::task::spawn_blocking(move || m.more_like(&item, k))
                .await
                .map_err(blocking_failed)?
                .map_err(|e| PluginError::new("unknown_item", e.to_string()))?;
            return Ok(RankOutput {
                version: model.version.clone(),
                users: 0,
                saved: 0,
                recommendations: Vec::new(),
                similar: Some(similar),
            });
        }
        // Each user once, in the order given (a repeated user would repeat their rows).
        let users: Vec<String> = match &c.users {
            Some(given) => {
                let mut seen = HashSet::new();
                given
                    .iter()
                    .filter(|u| seen.insert(u.as_str()))
                    .cloned()
                    .collect()
            }
            None => model.users.names().to_vec(),
        };
        // Everything the store holds as read by these users is left out, whatever its kind
        // or weight, and whether it came before or after training.
        let mut read: HashMap<String, Vec<String>> = HashMap::new();
        if let Ok(store) = store(cx) {
            let only = c.users.as_ref().map(|_| users.as_slice());
            for (user, item) in store.items_read(only).await? {
                read.entry(user).or_default().push(item);
            }
        }
        let k = c.k.max(1);
        let m = model.clone();
        let lists = tokio::task::spawn_blocking(move || rank_users(&m, &users, &read, k))
            .await
            .map_err(blocking_failed)?;
        let mut saved = 0;
        if c.save {
            let rows: Vec<RecommendationRow> = lists
                .iter()
                .flat_map(|l| {
                    l.items.iter().enumerate().map(|(p, r)| RecommendationRow {
                        user: l.user.clone(),
                        position: p as i64 + 1,
                        item: r.item.clone(),
                        score: f64::from(r.score),
                        reason: r.reason.clone(),
                    })
                })
                .collect();
            store(cx)?
                .save_recommendations((&cx.run_id, &cx.step_id), &model.version, &rows)
                .await?;
            saved = rows.len();
        }
        let n = lists.len();
        let emit = c.output.unwrap_or(n <= 1000);
        Ok(RankOutput {
            version: model.version.clone(),
            users: n,
            saved,
            recommendations: if emit { lists } else { Vec::new() },
            similar: None,
        })
    }
}
