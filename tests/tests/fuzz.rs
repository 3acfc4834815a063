//! Mutated workflows never panic the parser, the compiler or the diagnostics renderer.
//!
//! Each case takes a real workflow (`workflows/`, `tests/ui/`), mutates it a few times
//! (lines deleted, duplicated, swapped or re-indented, characters inserted, very long lines,
//! stray expressions) and compiles and renders it. By default a fixed number of cases from a
//! fixed seed run with the suite; `MEDIAFLOW_FUZZ_SECS=600` runs random seeds for that long.
//! A panic saves its input under the system temp dir and names the file.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mediaflow_workflow::compile_str;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PIECES: &[&str] = &[
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    "${{",
    "}}",
    "${{ steps.",
    "${{ inputs.x | ",
    "\t",
    "  ",
    "\n",
    "#",
    "&a",
    "*a",
    "!!binary ",
    "---",
    "?",
    "|",
    ">",
    "é",
    "\u{202e}",
    "\u{0}",
    "\u{1b}[2J",
    "uses: ",
    "needs: [",
    "for_each: ",
    "with: ",
    "when: ",
    "retry: ",
    "timeout: ",
    "99999999999999999999",
    "-1",
    "1e309",
    "null",
    "~",
    "steps:",
    "inputs:",
];

fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in ["workflows", "tests/ui", "tests/ui/process"] {
        if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
            files.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "yaml")),
            );
        }
    }
    files.sort();
    let texts: Vec<String> = files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    assert!(texts.len() >= 20, "the corpus has {} files", texts.len());
    texts
}

fn mutate(text: &str, rng: &mut StdRng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for _ in 0..rng.random_range(1..=4) {
        let n = lines.len().max(1);
        let i = rng.random_range(0..n);
        match rng.random_range(0..8) {
            0 if !lines.is_empty() => {
                lines.remove(i.min(lines.len() - 1));
            }
            1 if !lines.is_empty() => {
                let l = lines[i.min(lines.len() - 1)].clone();
                lines.insert(i.min(lines.len()), l);
            }
            2 if lines.len() > 1 => {
                let j = rng.random_range(0..lines.len());
                let k = i.min(lines.len() - 1);
                lines.swap(k, j);
            }
            3 if !lines.is_empty() => {
                let k = i.min(lines.len() - 1);
                let indent = " ".repeat(rng.random_range(0..9));
                lines[k] = format!("{indent}{}", lines[k].trim_start());
            }
            4 => {
                let long = "x".repeat(rng.random_range(1_000..120_000));
                let line = if rng.random_bool(0.5) {
                    format!("    with: {{ template: \"{long}\", nope: 1 }}")
                } else {
                    long
                };
                lines.insert(i.min(lines.len()), line);
            }
            _ if !lines.is_empty() => {
                let k = i.min(lines.len() - 1);
                let piece = PIECES[rng.random_range(0..PIECES.len())];
                let chars: Vec<char> = lines[k].chars().collect();
                let at = rng.random_range(0..=chars.len());
                let mut s: String = chars[..at].iter().collect();
                s.push_str(piece);
                s.extend(&chars[at..]);
                lines[k] = s;
            }
            _ => lines.push(PIECES[rng.random_range(0..PIECES.len())].to_owned()),
        }
    }
    let mut out = lines.join("\n");
    if rng.random_bool(0.1) {
        let cut = rng.random_range(0..=out.len());
        let cut = (0..=cut)
            .rev()
            .find(|&c| out.is_char_boundary(c))
            .unwrap_or(0);
        out.truncate(cut);
    }
    out
}

#[test]
fn mutated_workflows_never_panic() {
    let registry = mediaflow_builtin::registry();
    let texts = corpus();
    let budget = std::env::var("MEDIAFLOW_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs);
    let started = Instant::now();
    let mut rng = match budget {
        Some(_) => StdRng::from_os_rng(),
        None => StdRng::seed_from_u64(0x6d65_6469_6166_6c6f),
    };
    // Panics are caught and reported below; keep the default hook from printing each.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut cases = 0u64;
    let mut failure = None;
    while failure.is_none() {
        match budget {
            Some(b) if started.elapsed() >= b => break,
            None if cases >= 3_000 => break,
            _ => {}
        }
        let seed = &texts[rng.random_range(0..texts.len())];
        let text = mutate(seed, &mut rng);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if let Err(d) = compile_str("fuzz.yaml", &text, &registry) {
                let _ = d.render(false);
                let _ = d.render(true);
                let _ = d.short();
            }
        }));
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            let saved = std::env::temp_dir().join(format!("mediaflow-fuzz-{cases}.yaml"));
            let _ = std::fs::write(&saved, &text);
            failure = Some(format!(
                "case {cases} panicked ({why}); input saved to {}",
                saved.display()
            ));
        }
        cases += 1;
    }
    std::panic::set_hook(hook);
    assert!(failure.is_none(), "{}", failure.unwrap_or_default());
    eprintln!(
        "{cases} mutated workflows compiled and rendered without a panic in {:?}",
        started.elapsed()
    );
}
