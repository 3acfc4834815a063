//! Scoring fixed answers instead of generating one: the log-likelihood of each choice as
//! the continuation of the evaluated prompt, turned into probabilities over the choices.
//! Zero-shot classification with a language model (`text.sentiment` `engine: llm`).

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;
use mediaflow_plugin_api::PluginError;

fn log_softmax_at(logits: &[f32], token: LlamaToken) -> Option<f64> {
    let i = usize::try_from(token.0).ok()?;
    let x = *logits.get(i)? as f64;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v)) as f64;
    let sum: f64 = logits.iter().map(|v| (*v as f64 - max).exp()).sum();
    Some(x - max - sum.ln())
}

/// The tokens of each choice as it follows the prompt.
pub fn tokenize(
    model: &LlamaModel,
    choices: &[String],
) -> Result<Vec<Vec<LlamaToken>>, PluginError> {
    choices
        .iter()
        .map(|c| {
            let t = model.vocab().tokenize(c.as_bytes(), false, false);
            if t.is_empty() {
                Err(PluginError::new(
                    "bad_config",
                    format!("choice {c:?} has no tokens"),
                ))
            } else {
                Ok(t)
            }
        })
        .collect()
}

/// The log-likelihood of each choice after the prompt, whose `prompt_len` tokens are in
/// the context's sequence 0 and whose last token's logits are batch index `last`.
/// The context is left as the prompt left it.
pub fn score(
    ctx: &mut LlamaContext,
    prompt_len: usize,
    last: i32,
    choices: &[Vec<LlamaToken>],
) -> Result<Vec<f64>, PluginError> {
    let decode = |e: String| PluginError::new("decode", e).retryable();
    let first: Vec<f32> = ctx.get_logits_ith(last).to_vec();
    let longest = choices.iter().map(Vec::len).max().unwrap_or(1);
    let mut batch = LlamaBatch::new(longest.max(1), 1);
    let mut scores = Vec::with_capacity(choices.len());
    for tokens in choices {
        let mut total = log_softmax_at(&first, tokens[0])
            .ok_or_else(|| decode("a choice's token is outside the vocabulary".into()))?;
        if tokens.len() > 1 {
            batch.clear();
            // Every token but the last, each predicting the next.
            for (j, t) in tokens[..tokens.len() - 1].iter().enumerate() {
                batch
                    .add(*t, (prompt_len + j) as i32, &[0], true)
                    .map_err(|e| decode(e.to_string()))?;
            }
            ctx.decode(&mut batch)
                .map_err(|e| decode(format!("scoring a choice failed: {e}")))?;
            for (j, next) in tokens[1..].iter().enumerate() {
                let logits = ctx.get_logits_ith(j as i32);
                total += log_softmax_at(logits, *next)
                    .ok_or_else(|| decode("a choice's token is outside the vocabulary".into()))?;
            }
            // Forget the choice, keep the prompt.
            ctx.clear_kv_cache_seq(Some(0), Some(prompt_len as u32), None)
                .map_err(|e| decode(format!("cannot reset the context: {e}")))?;
        }
        scores.push(total);
    }
    Ok(scores)
}

/// Probabilities over the choices from their log-likelihoods (a softmax).
pub fn probabilities(logliks: &[f64]) -> Vec<f64> {
    let max = logliks.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logliks.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_follow_the_likelihoods() {
        let p = probabilities(&[-1.0, -2.0, -1.0]);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((p[0] - p[2]).abs() < 1e-12 && p[0] > p[1]);
        assert!((p[0] / p[1] - std::f64::consts::E).abs() < 1e-9);
    }

    #[test]
    fn log_softmax_is_normalised() {
        let logits = [1.0f32, 2.0, 3.0];
        let total: f64 = (0..3)
            .map(|i| log_softmax_at(&logits, LlamaToken(i)).unwrap().exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
        assert!(log_softmax_at(&logits, LlamaToken(3)).is_none());
        assert!(log_softmax_at(&logits, LlamaToken(-1)).is_none());
    }
}
