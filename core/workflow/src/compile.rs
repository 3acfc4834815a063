//! [`WorkflowDoc`] → [`Plan`]: plugins, config schemas, references, types and cycles.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use mediaflow_plugin_api::{
    pointer_escape, pointer_unescape, Descriptor, Permission, Registry, ValueType,
};
use miette::SourceSpan;
use petgraph::graph::{DiGraph, NodeIndex};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::ast::{Located, StepDecl, WorkflowDoc};
use crate::check::ConfigCheck;
use crate::diagnostic::{suggest, Collector};
use crate::expr::{condition_code, is_plain_path, segments, single_expression, Evaluator, Segment};
use crate::plan::{InputSpec, Plan, PlanStep};

const ROOTS: &[&str] = &["inputs", "steps", "item", "item_index", "run"];

/// Where an expression sits, which decides what it may refer to.
#[derive(Clone, Copy)]
struct Site<'a> {
    step: Option<&'a str>,
    allow_item: bool,
}

struct Compiler<'a> {
    c: &'a mut Collector,
    doc: &'a WorkflowDoc,
    registry: &'a Registry,
    evaluator: &'a Evaluator,
    ids: HashMap<&'a str, usize>,
}

fn has_expression(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.contains("${{"))
}

/// Whether the value at `pointer`, or any ancestor, is an expression string.
fn under_expression(root: &Value, pointer: &str) -> bool {
    let mut cur = root;
    if has_expression(cur) {
        return true;
    }
    for part in pointer.split('/').skip(1) {
        let key = pointer_unescape(part);
        let next = match cur {
            Value::Object(m) => m.get(&key),
            Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        match next {
            Some(v) if has_expression(v) => return true,
            Some(v) => cur = v,
            None => return false,
        }
    }
    false
}

pub(crate) fn compile(
    c: &mut Collector,
    doc: &WorkflowDoc,
    registry: &Registry,
    evaluator: Evaluator,
    file: &str,
) -> Option<Plan> {
    let mut plan = compile_steps(&mut *c, doc, registry, evaluator, file)?;
    check_schedule_inputs(c, &mut plan, &doc.schedules);
    Some(plan)
}

fn compile_steps(
    c: &mut Collector,
    doc: &WorkflowDoc,
    registry: &Registry,
    evaluator: Evaluator,
    file: &str,
) -> Option<Plan> {
    let mut ids = HashMap::new();
    for (i, s) in doc.steps.iter().enumerate() {
        ids.insert(s.id.value.as_str(), i);
    }
    let mut k = Compiler {
        c,
        doc,
        registry,
        evaluator: &evaluator,
        ids,
    };
    let mut validators: HashMap<String, Arc<jsonschema::Validator>> = HashMap::new();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); doc.steps.len()];
    for (i, step) in doc.steps.iter().enumerate() {
        k.check_config(step, &mut validators);
        deps[i] = k.step_dependencies(step);
    }
    for (_, value) in &doc.outputs {
        k.expressions_in(
            value,
            Site {
                step: None,
                allow_item: false,
            },
        );
    }
    let order = k.order(&deps)?;
    if !k.c.problems.is_empty() {
        return None;
    }
    let position: HashMap<usize, usize> = order.iter().enumerate().map(|(p, i)| (*i, p)).collect();
    let mut steps = Vec::with_capacity(order.len());
    for &i in &order {
        let decl = &doc.steps[i];
        let uses = decl.uses.as_ref()?;
        let plugin = registry.get(&uses.value)?.clone();
        let validator = validators.get(&uses.value)?.clone();
        steps.push(PlanStep {
            id: decl.id.value.clone(),
            with: decl.with.value.clone(),
            deps: deps[i].iter().map(|d| position[d]).collect(),
            when: decl.when.as_ref().map(|w| condition_code(&w.value)),
            for_each: decl.for_each.as_ref().map(|f| f.value.clone()),
            concurrency: decl.concurrency,
            retry: decl.retry.clone(),
            timeout: decl.timeout,
            cache: decl.cache,
            permissions: decl
                .permissions
                .iter()
                .filter_map(|p| Permission::parse(&p.value))
                .collect(),
            runs_on: decl.runs_on.clone(),
            line: k.c.source.line_col(decl.id.span.offset()).0,
            check: ConfigCheck::with_validator(plugin.clone(), validator),
            plugin,
        });
    }
    let text = k.c.source.text.to_string();
    Some(Plan {
        name: doc.name.value.clone(),
        description: doc.description.clone(),
        file: file.to_owned(),
        hash: hex::encode(Sha256::digest(text.as_bytes())),
        yaml: text,
        inputs: doc
            .inputs
            .iter()
            .map(|i| InputSpec {
                name: i.name.value.clone(),
                ty: i.ty,
                default: i.default.clone(),
                required: i.required,
                description: i.description.clone(),
            })
            .collect(),
        steps,
        outputs: doc
            .outputs
            .iter()
            .map(|(n, v)| (n.value.clone(), v.value.clone()))
            .collect(),
        timeout: doc.timeout,
        max_parallel: doc.max_parallel,
        schedules: Vec::new(),
        evaluator,
    })
}

/// Each schedule's `inputs:` must bind to the workflow's inputs, as a run's would.
fn check_schedule_inputs(
    c: &mut crate::diagnostic::Collector,
    plan: &mut Plan,
    schedules: &[(miette::SourceSpan, crate::schedule::Schedule)],
) {
    for (span, s) in schedules {
        match plan.bind_inputs(&s.inputs) {
            Ok(_) => plan.schedules.push(s.clone()),
            Err(e) => c.push(
                "mediaflow::schedule_inputs",
                None,
                Some(*span),
                format!("this schedule's inputs do not fit the workflow: {e}"),
                "in this schedule",
                Some(
                    "give every required input a value in the schedule's `inputs:`, or a default"
                        .to_owned(),
                ),
            ),
        }
    }
}

impl<'a> Compiler<'a> {
    /// `permissions:` names known capabilities that the (sandboxed) plugin can use.
    fn check_permissions(&mut self, step: &StepDecl, desc: &Descriptor) {
        let sid = Some(step.id.value.as_str());
        for p in &step.permissions {
            let Some(permission) = Permission::parse(&p.value) else {
                let help = match suggest(&p.value, Permission::names()) {
                    Some(s) => format!("did you mean `{s}`? "),
                    None => String::new(),
                } + &format!(
                    "permissions are {}",
                    Permission::names().collect::<Vec<_>>().join(", ")
                );
                self.c.push(
                    "mediaflow::unknown_permission",
                    sid,
                    Some(p.span),
                    format!("unknown permission `{}`", p.value),
                    "not a capability",
                    Some(help),
                );
                continue;
            };
            if !desc.sandboxed {
                self.c.push(
                    "mediaflow::permission_not_sandboxed",
                    sid,
                    Some(p.span),
                    format!(
                        "`permissions:` applies to sandboxed plugins, and `{}` is not one",
                        desc.name
                    ),
                    "nothing to grant",
                    Some(
                        "native plugins are trusted and need no grants; remove `permissions:`"
                            .to_owned(),
                    ),
                );
            } else if !desc.permissions.contains(&permission) {
                let uses: Vec<&str> = desc.permissions.iter().map(|p| p.as_str()).collect();
                self.c.push(
                    "mediaflow::permission_unused",
                    sid,
                    Some(p.span),
                    format!("`{}` never uses `{permission}`", desc.name),
                    "not used by this plugin",
                    Some(if uses.is_empty() {
                        "grant only what a plugin uses; this one uses no capability".to_owned()
                    } else {
                        format!(
                            "grant only what a plugin uses; this one can use: {}",
                            uses.join(", ")
                        )
                    }),
                );
            }
        }
    }

    fn check_config(
        &mut self,
        step: &StepDecl,
        validators: &mut HashMap<String, Arc<jsonschema::Validator>>,
    ) {
        let sid = Some(step.id.value.as_str());
        let Some(uses) = &step.uses else { return };
        let Some(plugin) = self.registry.get(&uses.value) else {
            if self.registry.loader_for(&uses.value).is_some() {
                // A `scheme:` reference that failed to load: already reported at this line.
                return;
            }
            let help = match suggest(&uses.value, self.registry.names()) {
                Some(s) => format!("did you mean `{s}`? `mediaflow plugins` lists every plugin"),
                None => "`mediaflow plugins` lists the plugins this installation has".to_owned(),
            };
            self.c.push(
                "mediaflow::unknown_plugin",
                sid,
                Some(uses.span),
                format!("unknown plugin `{}`", uses.value),
                "no plugin by this name",
                Some(help),
            );
            return;
        };
        let desc = plugin.descriptor();
        self.check_permissions(step, desc);
        let validator = match validators.get(&uses.value) {
            Some(v) => v.clone(),
            None => match jsonschema::validator_for(&desc.config_schema) {
                Ok(v) => {
                    let v = Arc::new(v);
                    validators.insert(uses.value.clone(), v.clone());
                    v
                }
                Err(e) => {
                    self.c.push(
                        "mediaflow::plugin_schema",
                        sid,
                        Some(uses.span),
                        format!("plugin `{}` has an invalid config schema: {e}", desc.name),
                        "this plugin",
                        Some("this is a bug in the plugin; report it to its author".to_owned()),
                    );
                    return;
                }
            },
        };
        let with = &step.with;
        let properties = desc.settings();
        let reported = self.c.problems.len();
        for err in validator.iter_errors(&with.value) {
            let ptr = err.instance_path().as_str().to_owned();
            if under_expression(&with.value, &ptr) {
                continue;
            }
            match err.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for key in unexpected {
                        let child = format!("{ptr}/{}", pointer_escape(key));
                        let span = with.key_spans.get(&child).copied().or(with.span_at(&ptr));
                        let help = match suggest(key, properties.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("`{}` takes: {}", desc.name, properties.join(", ")),
                        };
                        self.c.push(
                            "mediaflow::unknown_config_key",
                            sid,
                            span,
                            format!("`{}` has no setting `{key}`", desc.name),
                            "unknown setting",
                            Some(help),
                        );
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or("?");
                    let span = if ptr.is_empty() {
                        step.uses.as_ref().map(|u| u.span)
                    } else {
                        with.span_at(&ptr)
                    };
                    self.c.push(
                        "mediaflow::missing_config",
                        sid,
                        span,
                        format!("`{}` needs the setting `{name}`", desc.name),
                        "required here",
                        Some(format!("add `{name}:` under `with:`")),
                    );
                }
                _ => {
                    let at = if ptr.is_empty() {
                        "with".to_owned()
                    } else {
                        format!("with{ptr}")
                    };
                    self.c.push(
                        "mediaflow::invalid_config",
                        sid,
                        with.span_at(&ptr),
                        format!("invalid `{at}` for `{}`: {err}", desc.name),
                        "does not match the plugin's schema",
                        Some(format!(
                            "`mediaflow plugins {}` prints the schema",
                            desc.name
                        )),
                    );
                }
            }
        }
        // A map that breaks the schema cannot be parsed by the plugin either; its `validate`
        // would only repeat the schema's complaint in other words.
        if self.c.problems.len() > reported {
            return;
        }
        if let Err(issues) = plugin.validate(&with.value) {
            for issue in issues {
                if under_expression(&with.value, &issue.pointer) {
                    continue;
                }
                self.c.push(
                    "mediaflow::invalid_config",
                    sid,
                    with.span_at(&issue.pointer),
                    format!(
                        "invalid `with{}` for `{}`: {}",
                        issue.pointer, desc.name, issue.message
                    ),
                    "here",
                    issue.help,
                );
            }
        }
    }

    /// Every step this one depends on: `needs:` plus each `steps.X` reference.
    fn step_dependencies(&mut self, step: &StepDecl) -> BTreeSet<usize> {
        let sid = step.id.value.as_str();
        let mut deps = BTreeSet::new();
        for need in &step.needs {
            match self.ids.get(need.value.as_str()) {
                Some(&i) => {
                    deps.insert(i);
                }
                None => self.unknown_step(sid, &need.value, need.span),
            }
        }
        let site = Site {
            step: Some(sid),
            allow_item: step.for_each.is_some(),
        };
        deps.extend(self.expressions_in(&step.with, site));
        if let Some(when) = &step.when {
            let code = condition_code(&when.value);
            let in_item = Site {
                allow_item: false,
                ..site
            };
            deps.extend(self.expression(&code, when.span, in_item));
        }
        if let Some(fe) = &step.for_each {
            let outer = Site {
                allow_item: false,
                ..site
            };
            deps.extend(self.expressions_in(fe, outer));
            if let Some(code) = fe.value.as_str().and_then(single_expression) {
                let ty = self.path_type(&code);
                if !ty.fits(ValueType::List) {
                    self.c.push(
                        "mediaflow::type_mismatch",
                        Some(sid),
                        fe.span_at(""),
                        format!("`for_each` needs a list, but `{code}` is {ty}"),
                        format!("this is {ty}"),
                        None,
                    );
                }
            } else if !fe.value.is_array() && !has_expression(&fe.value) {
                self.c.push(
                    "mediaflow::type_mismatch",
                    Some(sid),
                    fe.span_at(""),
                    "`for_each` needs a list or an expression giving one",
                    "not a list",
                    None,
                );
            }
        }
        self.check_input_types(step);
        deps
    }

    fn unknown_step(&mut self, sid: &str, name: &str, span: SourceSpan) {
        let help = match suggest(name, self.ids.keys().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!(
                "steps in this workflow: {}",
                self.doc
                    .steps
                    .iter()
                    .map(|s| s.id.value.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        self.c.push(
            "mediaflow::unknown_step",
            Some(sid),
            Some(span),
            format!("there is no step `{name}`"),
            "unknown step",
            Some(help),
        );
    }

    /// Checks every expression in a located value; returns the steps they refer to.
    fn expressions_in(&mut self, loc: &Located, site: Site) -> BTreeSet<usize> {
        let mut deps = BTreeSet::new();
        let mut stack: Vec<(String, &Value)> = vec![(String::new(), &loc.value)];
        while let Some((ptr, v)) = stack.pop() {
            match v {
                Value::String(s) => {
                    let span = loc.span_at(&ptr).unwrap_or(SourceSpan::from((0, 0)));
                    match segments(s) {
                        Ok(None) => {}
                        Ok(Some(segs)) => {
                            for seg in segs {
                                if let Segment::Expr(code, _) = seg {
                                    deps.extend(self.expression(&code, span, site));
                                }
                            }
                        }
                        Err(msg) => self.c.push(
                            "mediaflow::expression",
                            site.step,
                            Some(span),
                            msg,
                            "in this string",
                            None,
                        ),
                    }
                }
                Value::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        stack.push((format!("{ptr}/{i}"), item));
                    }
                }
                Value::Object(map) => {
                    for (k, item) in map {
                        stack.push((format!("{ptr}/{}", pointer_escape(k)), item));
                    }
                }
                _ => {}
            }
        }
        deps
    }

    /// Checks one expression's syntax and references.
    fn expression(&mut self, code: &str, span: SourceSpan, site: Site) -> BTreeSet<usize> {
        let mut deps = BTreeSet::new();
        let refs = match self.evaluator.references(code) {
            Ok(r) => r,
            Err(msg) => {
                self.c.push(
                    "mediaflow::expression",
                    site.step,
                    Some(span),
                    format!("invalid expression `{code}`: {msg}"),
                    "in this expression",
                    Some(
                        "expressions use Jinja syntax: `${{ steps.ID.outputs.NAME | upper }}`"
                            .to_owned(),
                    ),
                );
                return deps;
            }
        };
        for r in refs {
            let parts: Vec<&str> = r.split('.').collect();
            match parts[0] {
                "inputs" => {
                    if let Some(name) = parts.get(1) {
                        if !self.doc.inputs.iter().any(|i| i.name.value == *name) {
                            let help = match suggest(
                                name,
                                self.doc.inputs.iter().map(|i| i.name.value.as_str()),
                            ) {
                                Some(s) => format!("did you mean `inputs.{s}`?"),
                                None => "declare it under `inputs:` at the top of the workflow"
                                    .to_owned(),
                            };
                            self.c.push(
                                "mediaflow::unknown_input",
                                site.step,
                                Some(span),
                                format!("`{r}` refers to an input that is not declared"),
                                format!("no input `{name}`"),
                                Some(help),
                            );
                        }
                    }
                }
                "steps" => {
                    if let Some(d) = self.step_reference(&parts, &r, span, site) {
                        deps.insert(d);
                    }
                }
                "item" | "item_index" if !site.allow_item => {
                    self.c.push(
                        "mediaflow::item_outside_for_each",
                        site.step,
                        Some(span),
                        format!(
                            "`{}` is only defined inside the `with:` of a `for_each` step",
                            parts[0]
                        ),
                        "not in a for_each step",
                        Some(
                            "add `for_each: ${{ … }}` to this step, or remove the reference"
                                .to_owned(),
                        ),
                    );
                }
                root if ROOTS.contains(&root) => {}
                other => {
                    let help = match suggest(other, ROOTS.iter().copied()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("expressions can read: {}", ROOTS.join(", ")),
                    };
                    self.c.push(
                        "mediaflow::unknown_variable",
                        site.step,
                        Some(span),
                        format!("unknown variable `{other}` in `{code}`"),
                        "unknown variable",
                        Some(help),
                    );
                }
            }
        }
        deps
    }

    fn step_reference(
        &mut self,
        parts: &[&str],
        r: &str,
        span: SourceSpan,
        site: Site,
    ) -> Option<usize> {
        let Some(target) = parts.get(1) else {
            self.c.push(
                "mediaflow::dynamic_step_reference",
                site.step,
                Some(span),
                "steps must be named directly, as `steps.ID`".to_string(),
                "dynamic reference",
                Some(
                    "write `steps.ID.outputs.NAME`; mediaflow needs the names to order the steps"
                        .to_owned(),
                ),
            );
            return None;
        };
        let Some(&idx) = self.ids.get(target) else {
            self.unknown_step(site.step.unwrap_or("outputs"), target, span);
            return None;
        };
        let decl = &self.doc.steps[idx];
        match parts.get(2).copied() {
            None | Some("status") => {}
            Some("outputs") => {
                if let (Some(out), Some(desc)) = (parts.get(3), self.descriptor_of(decl)) {
                    if decl.for_each.is_some() {
                        self.c.push(
                            "mediaflow::for_each_outputs",
                            site.step,
                            Some(span),
                            format!("`steps.{target}` runs for_each, so its `outputs` is a list"),
                            "a list, not an object",
                            Some(format!("use `steps.{target}.outputs | map(attribute='{out}')` or index an item: `steps.{target}.outputs[0].{out}`")),
                        );
                    } else if desc.output_port(out).is_none() {
                        let names: Vec<&str> =
                            desc.outputs.iter().map(|p| p.name.as_str()).collect();
                        let help = match suggest(out, names.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => format!("`{}` outputs: {}", desc.name, names.join(", ")),
                        };
                        self.c.push(
                            "mediaflow::unknown_output",
                            site.step,
                            Some(span),
                            format!("step `{target}` ({}) has no output `{out}`", desc.name),
                            "unknown output",
                            Some(help),
                        );
                    }
                }
            }
            Some(other) => {
                self.c.push(
                    "mediaflow::unknown_step_field",
                    site.step,
                    Some(span),
                    format!("`{r}`: a step has `outputs` and `status`, not `{other}`"),
                    "unknown field",
                    Some(format!("did you mean `steps.{target}.outputs.{other}`?")),
                );
            }
        }
        Some(idx)
    }

    fn descriptor_of(&self, decl: &StepDecl) -> Option<&'a mediaflow_plugin_api::Descriptor> {
        let uses = decl.uses.as_ref()?;
        self.registry.get(&uses.value).map(|p| p.descriptor())
    }

    /// The static type of a plain-path expression (`Any` when unknown).
    fn path_type(&self, code: &str) -> ValueType {
        if !is_plain_path(code) {
            return ValueType::Any;
        }
        let parts: Vec<&str> = code.split('.').collect();
        match parts.as_slice() {
            ["inputs", name] => self
                .doc
                .inputs
                .iter()
                .find(|i| i.name.value == *name)
                .map(|i| i.ty)
                .unwrap_or(ValueType::Any),
            ["steps", id, "status"] if self.ids.contains_key(id) => ValueType::String,
            ["steps", id, "outputs"] => match self.ids.get(id).map(|&i| &self.doc.steps[i]) {
                Some(d) if d.for_each.is_some() => ValueType::List,
                Some(_) => ValueType::Object,
                None => ValueType::Any,
            },
            ["steps", id, "outputs", out] => {
                let Some(decl) = self.ids.get(id).map(|&i| &self.doc.steps[i]) else {
                    return ValueType::Any;
                };
                if decl.for_each.is_some() {
                    return ValueType::Any;
                }
                self.descriptor_of(decl)
                    .and_then(|d| d.output_port(out))
                    .map(|p| p.ty)
                    .unwrap_or(ValueType::Any)
            }
            ["item_index"] => ValueType::Integer,
            _ => ValueType::Any,
        }
    }

    /// An output feeding a typed input must have a compatible type.
    fn check_input_types(&mut self, step: &StepDecl) {
        let Some(desc) = self.descriptor_of(step) else {
            return;
        };
        let Some(map) = step.with.value.as_object() else {
            return;
        };
        for (key, value) in map {
            let Some(port) = desc.input_port(key) else {
                continue;
            };
            let Some(code) = value.as_str().and_then(single_expression) else {
                continue;
            };
            let ty = self.path_type(&code);
            if !ty.fits(port.ty) {
                let ptr = format!("/{}", pointer_escape(key));
                let fix = match (ty, port.ty) {
                    (_, ValueType::String) => {
                        format!(" (convert it with `${{{{ {code} | string }}}}`)")
                    }
                    _ => String::new(),
                };
                self.c.push(
                    "mediaflow::type_mismatch",
                    Some(&step.id.value),
                    step.with.span_at(&ptr),
                    format!(
                        "type mismatch: `{code}` is {ty}, but `{key}` of `{}` expects {}",
                        desc.name, port.ty
                    ),
                    format!("{ty} given, {} expected", port.ty),
                    Some(format!("pass a value of type {}{fix}", port.ty)),
                );
            }
        }
    }

    /// Topological order of the steps, or a diagnostic naming each cycle.
    fn order(&mut self, deps: &[BTreeSet<usize>]) -> Option<Vec<usize>> {
        let mut g: DiGraph<usize, ()> = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..deps.len()).map(|i| g.add_node(i)).collect();
        for (i, ds) in deps.iter().enumerate() {
            for &d in ds {
                g.add_edge(nodes[d], nodes[i], ());
            }
        }
        match petgraph::algo::toposort(&g, None) {
            Ok(order) => Some(order.into_iter().map(|n| g[n]).collect()),
            Err(_) => {
                for scc in petgraph::algo::tarjan_scc(&g) {
                    let members: BTreeSet<usize> = scc.iter().map(|n| g[*n]).collect();
                    let self_loop =
                        members.len() == 1 && members.iter().all(|m| deps[*m].contains(m));
                    if members.len() < 2 && !self_loop {
                        continue;
                    }
                    let cycle = find_cycle(deps, &members);
                    let first = cycle[0];
                    let names: Vec<&str> = cycle
                        .iter()
                        .chain(std::iter::once(&first))
                        .map(|&i| self.doc.steps[i].id.value.as_str())
                        .collect();
                    let decl = &self.doc.steps[first];
                    self.c.push(
                        "mediaflow::cycle",
                        Some(&decl.id.value),
                        Some(decl.id.span),
                        format!("dependency cycle: {}", names.join(" → ")),
                        "this step waits for itself",
                        Some("a step cannot use, directly or indirectly, its own outputs; remove one of the references or `needs:` entries".to_owned()),
                    );
                }
                None
            }
        }
    }
}

/// A cycle through `members`, in the order the steps wait for each other.
fn find_cycle(deps: &[BTreeSet<usize>], members: &BTreeSet<usize>) -> Vec<usize> {
    let start = *members.iter().next().unwrap_or(&0);
    // Walk "depends on" edges inside the component until a step repeats.
    let mut path = vec![start];
    let mut cur = start;
    loop {
        let next = deps[cur].iter().find(|d| members.contains(d)).copied();
        match next {
            Some(n) => {
                if let Some(pos) = path.iter().position(|p| *p == n) {
                    let mut cycle = path[pos..].to_vec();
                    cycle.reverse();
                    return cycle;
                }
                path.push(n);
                cur = n;
            }
            None => return path,
        }
    }
}
