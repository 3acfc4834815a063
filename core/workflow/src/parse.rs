//! YAML → [`WorkflowDoc`], reporting every structural problem with its span.

use std::collections::HashMap;
use std::time::Duration;

use marked_yaml::{LoadError, LoaderOptions, Node};
use mediaflow_plugin_api::{parse_duration, pointer_escape, ValueType};
use miette::SourceSpan;
use serde_json::{Map, Number, Value};

use crate::ast::*;
use crate::diagnostic::{suggest, Collector};

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "inputs",
    "steps",
    "outputs",
    "timeout",
    "max_parallel",
    "schedule",
];
const STEP_KEYS: &[&str] = &[
    "uses",
    "with",
    "needs",
    "when",
    "for_each",
    "concurrency",
    "retry",
    "timeout",
    "cache",
    "permissions",
    "runs_on",
    "description",
];
const INPUT_KEYS: &[&str] = &["type", "default", "required", "description"];
const RETRY_KEYS: &[&str] = &["max_attempts", "backoff", "max_backoff", "jitter"];

/// Parses the YAML text. `None` when the file is not even valid YAML (the problem is in
/// `c`).
pub(crate) fn parse(c: &mut Collector, default_name: &str) -> Option<WorkflowDoc> {
    // Quoted scalars stay strings (`""`, `"42"`, `"true"`); only plain ones are typed.
    let options = LoaderOptions::default()
        .error_on_duplicate_keys(true)
        .prevent_coercion(true);
    let text = c.source.text.clone();
    let root = match marked_yaml::parse_yaml_with_options(0, &*text, options) {
        Ok(root) => root,
        Err(e) => {
            syntax_error(c, e);
            return None;
        }
    };
    let map = root.as_mapping()?;
    let p = &mut P { c };
    p.unknown_keys(map, TOP_KEYS, None, "workflow");

    let name = match map.get_node("name") {
        Some(n) => p.string(n, None, "name").unwrap_or_else(|| Spanned {
            value: default_name.to_owned(),
            span: p.c.source.node_span(n),
        }),
        None => Spanned {
            value: default_name.to_owned(),
            span: SourceSpan::from((0, 0)),
        },
    };
    let description = map
        .get_node("description")
        .and_then(|n| p.string(n, None, "description"))
        .map(|s| s.value)
        .unwrap_or_default();
    let inputs = map
        .get_node("inputs")
        .map(|n| p.inputs(n))
        .unwrap_or_default();
    let steps = match map.get_node("steps") {
        Some(n) => p.steps(n),
        None => {
            let first = p.c.source.text.lines().next().unwrap_or("").len();
            let span = SourceSpan::from((0, first.max(1)));
            p.c.push(
                "mediaflow::no_steps",
                None,
                Some(span),
                "the workflow has no `steps:`",
                "expected a `steps:` mapping in this file",
                Some("add `steps:` with at least one step, e.g.\nsteps:\n  hello:\n    uses: text.template\n    with: { template: \"hello\" }".into()),
            );
            Vec::new()
        }
    };
    let outputs = match map.get_node("outputs") {
        Some(Node::Mapping(m)) => m
            .iter()
            .map(|(k, v)| {
                (
                    Spanned {
                        value: k.as_str().to_owned(),
                        span: p.c.source.scalar_span(k.span(), k.as_str()),
                    },
                    p.located(v),
                )
            })
            .collect(),
        Some(other) => {
            p.expect(
                other,
                None,
                "outputs",
                "a mapping of output name to expression",
            );
            Vec::new()
        }
        None => Vec::new(),
    };
    let timeout = map
        .get_node("timeout")
        .and_then(|n| p.duration(n, None, "timeout"));
    let max_parallel = map
        .get_node("max_parallel")
        .and_then(|n| p.count(n, None, "max_parallel"));
    let schedules = map
        .get_node("schedule")
        .map(|n| p.schedules(n))
        .unwrap_or_default();
    Some(WorkflowDoc {
        name,
        description,
        inputs,
        steps,
        outputs,
        timeout,
        max_parallel,
        schedules,
    })
}

fn syntax_error(c: &mut Collector, e: LoadError) {
    let (marker, message, help) = match &e {
        LoadError::ScanError(m, se) => (
            Some(*m),
            format!("invalid YAML: {}", se.info()),
            Some("check the indentation and quoting around this point; values containing `: ` or starting with `{`, `[`, `*` or `&` need quotes".to_owned()),
        ),
        LoadError::TopLevelMustBeMapping(m) => (
            Some(*m),
            "a workflow file must be a YAML mapping (`name:`, `steps:` …)".to_owned(),
            None,
        ),
        LoadError::DuplicateKey(inner) => (
            inner.key.span().start().copied(),
            format!("duplicate key `{}`", inner.key.as_str()),
            Some("each key may appear once in a mapping; remove or rename one".to_owned()),
        ),
        LoadError::UnexpectedAnchor(m) | LoadError::UnexpectedTag(m) => (
            Some(*m),
            "YAML anchors, aliases and tags are not supported in workflows".to_owned(),
            None,
        ),
        LoadError::MappingKeyMustBeScalar(m) => {
            (Some(*m), "mapping keys must be plain strings".to_owned(), None)
        }
        other => (None, format!("invalid YAML: {other}"), None),
    };
    let span = marker.map(|m| c.source.point(&m));
    c.push("mediaflow::yaml_syntax", None, span, message, "here", help);
}

pub(crate) struct P<'a> {
    pub(crate) c: &'a mut Collector,
}

fn kind(n: &Node) -> &'static str {
    match n {
        Node::Scalar(_) => "a scalar",
        Node::Mapping(_) => "a mapping",
        Node::Sequence(_) => "a list",
    }
}

/// A plain YAML scalar as JSON, following YAML 1.2's core schema.
fn scalar_value(s: &marked_yaml::types::MarkedScalarNode) -> Value {
    let text = s.as_str();
    if !s.may_coerce() {
        return Value::String(text.to_owned());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if text.chars().any(|c| c.is_ascii_digit()) && !text.contains(char::is_alphabetic) {
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_owned())
}

impl P<'_> {
    pub(crate) fn expect(&mut self, n: &Node, step: Option<&str>, key: &str, what: &str) {
        let span = self.c.source.node_span(n);
        self.c.push(
            "mediaflow::wrong_type",
            step,
            Some(span),
            format!("`{key}` must be {what}, found {}", kind(n)),
            format!("expected {what}"),
            None,
        );
    }

    pub(crate) fn unknown_keys(
        &mut self,
        map: &marked_yaml::types::MarkedMappingNode,
        allowed: &[&str],
        step: Option<&str>,
        context: &str,
    ) {
        for (k, _) in map.iter() {
            if allowed.contains(&k.as_str()) {
                continue;
            }
            let span = self.c.source.scalar_span(k.span(), k.as_str());
            let help = match suggest(k.as_str(), allowed.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("allowed keys here: {}", allowed.join(", ")),
            };
            self.c.push(
                "mediaflow::unknown_key",
                step,
                Some(span),
                format!("unknown key `{}` in {context}", k.as_str()),
                "not a known key",
                Some(help),
            );
        }
    }

    pub(crate) fn string(
        &mut self,
        n: &Node,
        step: Option<&str>,
        key: &str,
    ) -> Option<Spanned<String>> {
        match n {
            Node::Scalar(s) => Some(Spanned {
                value: s.as_str().to_owned(),
                span: self.c.source.scalar_span(s.span(), s.as_str()),
            }),
            other => {
                self.expect(other, step, key, "a string");
                None
            }
        }
    }

    fn count(&mut self, n: &Node, step: Option<&str>, key: &str) -> Option<usize> {
        let v = n.as_scalar().and_then(|s| s.as_str().parse::<usize>().ok());
        match v {
            Some(v) if v > 0 => Some(v),
            _ => {
                let span = self.c.source.node_span(n);
                self.c.push(
                    "mediaflow::wrong_type",
                    step,
                    Some(span),
                    format!("`{key}` must be a whole number of at least 1"),
                    "expected a positive integer",
                    None,
                );
                None
            }
        }
    }

    fn boolean(&mut self, n: &Node, step: Option<&str>, key: &str) -> Option<bool> {
        match n.as_scalar().and_then(|s| s.as_bool()) {
            Some(b) => Some(b),
            None => {
                let span = self.c.source.node_span(n);
                self.c.push(
                    "mediaflow::wrong_type",
                    step,
                    Some(span),
                    format!("`{key}` must be true or false"),
                    "expected a boolean",
                    None,
                );
                None
            }
        }
    }

    fn duration(&mut self, n: &Node, step: Option<&str>, key: &str) -> Option<Duration> {
        let text = n.as_scalar().map(|s| s.as_str().trim().to_owned());
        let parsed = text.as_deref().and_then(parse_duration);
        if parsed.is_none() {
            let span = self.c.source.node_span(n);
            self.c.push(
                "mediaflow::bad_duration",
                step,
                Some(span),
                format!("`{key}` is not a duration"),
                "expected a duration",
                Some("write a number of seconds or a duration such as `500ms`, `30s`, `2m`, `1h 30m`".to_owned()),
            );
        }
        parsed
    }

    pub(crate) fn located(&mut self, n: &Node) -> Located {
        let mut loc = Located::default();
        loc.value = self.convert(n, String::new(), &mut loc.spans, &mut loc.key_spans);
        loc
    }

    fn convert(
        &mut self,
        n: &Node,
        ptr: String,
        spans: &mut HashMap<String, SourceSpan>,
        keys: &mut HashMap<String, SourceSpan>,
    ) -> Value {
        spans.insert(ptr.clone(), self.c.source.node_span(n));
        match n {
            Node::Scalar(s) => scalar_value(s),
            Node::Sequence(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.convert(item, format!("{ptr}/{i}"), spans, keys))
                    .collect(),
            ),
            Node::Mapping(m) => {
                let mut obj = Map::new();
                for (k, v) in m.iter() {
                    let child = format!("{ptr}/{}", pointer_escape(k.as_str()));
                    keys.insert(
                        child.clone(),
                        self.c.source.scalar_span(k.span(), k.as_str()),
                    );
                    let value = self.convert(v, child, spans, keys);
                    obj.insert(k.as_str().to_owned(), value);
                }
                Value::Object(obj)
            }
        }
    }

    fn inputs(&mut self, n: &Node) -> Vec<InputDecl> {
        let Some(map) = n.as_mapping() else {
            self.expect(n, None, "inputs", "a mapping of input name to declaration");
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            let name = Spanned {
                value: k.as_str().to_owned(),
                span: self.c.source.scalar_span(k.span(), k.as_str()),
            };
            let mut decl = InputDecl {
                name,
                ty: ValueType::Any,
                default: None,
                required: false,
                description: String::new(),
            };
            match v {
                // `name: string` shorthand.
                Node::Scalar(s) => {
                    decl.ty = self.value_type(s, v);
                    decl.required = true;
                }
                Node::Mapping(m) => {
                    self.unknown_keys(m, INPUT_KEYS, None, "an input declaration");
                    if let Some(Node::Scalar(s)) = m.get_node("type") {
                        decl.ty = self.value_type(s, m.get_node("type").unwrap_or(v));
                    }
                    decl.default = m.get_node("default").map(|d| self.located(d).value);
                    if let Some(r) = m.get_node("required") {
                        decl.required = self.boolean(r, None, "required").unwrap_or(false);
                    } else {
                        decl.required = decl.default.is_none();
                    }
                    if let Some(d) = m
                        .get_node("description")
                        .and_then(|d| self.string(d, None, "description"))
                    {
                        decl.description = d.value;
                    }
                }
                other => self.expect(other, None, k.as_str(), "a type name or a mapping"),
            }
            out.push(decl);
        }
        out
    }

    fn value_type(&mut self, s: &marked_yaml::types::MarkedScalarNode, n: &Node) -> ValueType {
        match ValueType::parse(s.as_str()) {
            Some(t) => t,
            None => {
                let span = self.c.source.node_span(n);
                let help = match suggest(s.as_str(), ValueType::names()) {
                    Some(t) => format!("did you mean `{t}`?"),
                    None => format!(
                        "types: {}",
                        ValueType::names().collect::<Vec<_>>().join(", ")
                    ),
                };
                self.c.push(
                    "mediaflow::unknown_type",
                    None,
                    Some(span),
                    format!("unknown input type `{}`", s.as_str()),
                    "not a type",
                    Some(help),
                );
                ValueType::Any
            }
        }
    }

    fn steps(&mut self, n: &Node) -> Vec<StepDecl> {
        let Some(map) = n.as_mapping() else {
            self.expect(n, None, "steps", "a mapping of step id to step");
            return Vec::new();
        };
        if map.is_empty() {
            let span = self.c.source.node_span(n);
            self.c.push(
                "mediaflow::no_steps",
                None,
                Some(span),
                "`steps:` is empty",
                "no steps here",
                Some("add at least one step".to_owned()),
            );
        }
        let mut out = Vec::new();
        for (k, v) in map.iter() {
            let id = Spanned {
                value: k.as_str().to_owned(),
                span: self.c.source.scalar_span(k.span(), k.as_str()),
            };
            let valid_id = !id.value.is_empty()
                && id
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && id
                    .value
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !valid_id {
                self.c.push(
                    "mediaflow::bad_step_id",
                    Some(&id.value),
                    Some(id.span),
                    format!("`{}` is not a valid step id", id.value),
                    "invalid id",
                    Some("step ids start with a letter or `_` and contain only letters, digits, `_` and `-`, so expressions can name them as `steps.ID`".to_owned()),
                );
            }
            if let Some(step) = self.step(id, v) {
                out.push(step);
            }
        }
        out
    }

    fn step(&mut self, id: Spanned<String>, n: &Node) -> Option<StepDecl> {
        let sid = id.value.clone();
        let step = Some(sid.as_str());
        let Some(map) = n.as_mapping() else {
            self.expect(n, step, &sid, "a mapping with `uses:`");
            return None;
        };
        self.unknown_keys(map, STEP_KEYS, step, "a step");
        let uses = match map.get_node("uses") {
            Some(u) => self.string(u, step, "uses"),
            None => {
                self.c.push(
                    "mediaflow::missing_uses",
                    step,
                    Some(id.span),
                    "the step has no `uses:`",
                    "this step",
                    Some("say which plugin runs this step, e.g. `uses: text.template`; `mediaflow plugins` lists them".to_owned()),
                );
                None
            }
        };
        let with = match map.get_node("with") {
            Some(w @ Node::Mapping(_)) => {
                let mut loc = self.located(w);
                // Problems with the map as a whole point at its `with` key.
                if let Some((k, _)) = map.iter().find(|(k, _)| k.as_str() == "with") {
                    loc.spans.insert(
                        String::new(),
                        self.c.source.scalar_span(k.span(), k.as_str()),
                    );
                }
                loc
            }
            Some(other) => {
                self.expect(other, step, "with", "a mapping");
                Located::default()
            }
            None => Located {
                value: Value::Object(Map::new()),
                spans: HashMap::from([(String::new(), id.span)]),
                key_spans: HashMap::new(),
            },
        };
        let needs = match map.get_node("needs") {
            None => Vec::new(),
            Some(Node::Sequence(items)) => items
                .iter()
                .filter_map(|i| self.string(i, step, "needs"))
                .collect(),
            Some(other) => self.string(other, step, "needs").into_iter().collect(),
        };
        let when = map
            .get_node("when")
            .and_then(|w| self.string(w, step, "when"));
        let for_each = map.get_node("for_each").map(|f| self.located(f));
        let concurrency = map
            .get_node("concurrency")
            .and_then(|c| self.count(c, step, "concurrency"));
        let retry = match map.get_node("retry") {
            None => RetryPolicy::default(),
            Some(r) => self.retry(r, step),
        };
        let timeout = map
            .get_node("timeout")
            .and_then(|t| self.duration(t, step, "timeout"));
        let cache = map
            .get_node("cache")
            .and_then(|c| self.boolean(c, step, "cache"))
            .unwrap_or(true);
        let permissions = match map.get_node("permissions") {
            None => Vec::new(),
            Some(Node::Sequence(items)) => items
                .iter()
                .filter_map(|i| self.string(i, step, "permissions"))
                .collect(),
            Some(other) => self
                .string(other, step, "permissions")
                .into_iter()
                .collect(),
        };
        let runs_on = match map.get_node("runs_on") {
            None => Vec::new(),
            Some(Node::Sequence(items)) => items
                .iter()
                .filter_map(|i| self.string(i, step, "runs_on"))
                .map(|t| t.value)
                .collect(),
            Some(other) => self
                .string(other, step, "runs_on")
                .map(|t| t.value)
                .into_iter()
                .collect(),
        };
        let description = map
            .get_node("description")
            .and_then(|d| self.string(d, step, "description"))
            .map(|d| d.value)
            .unwrap_or_default();
        Some(StepDecl {
            id,
            uses,
            with,
            needs,
            when,
            for_each,
            concurrency,
            retry,
            timeout,
            cache,
            permissions,
            runs_on,
            description,
        })
    }

    fn retry(&mut self, n: &Node, step: Option<&str>) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        match n {
            // `retry: 3` shorthand.
            Node::Scalar(_) => {
                if let Some(n) = self.count(n, step, "retry") {
                    policy.max_attempts = n as u32;
                }
            }
            Node::Mapping(m) => {
                self.unknown_keys(m, RETRY_KEYS, step, "`retry`");
                if let Some(v) = m
                    .get_node("max_attempts")
                    .and_then(|v| self.count(v, step, "max_attempts"))
                {
                    policy.max_attempts = v as u32;
                }
                if let Some(v) = m
                    .get_node("backoff")
                    .and_then(|v| self.duration(v, step, "backoff"))
                {
                    policy.backoff = v;
                }
                if let Some(v) = m
                    .get_node("max_backoff")
                    .and_then(|v| self.duration(v, step, "max_backoff"))
                {
                    policy.max_backoff = v;
                }
                if let Some(v) = m
                    .get_node("jitter")
                    .and_then(|v| self.boolean(v, step, "jitter"))
                {
                    policy.jitter = v;
                }
            }
            other => self.expect(other, step, "retry", "a number of attempts or a mapping"),
        }
        policy
    }
}
