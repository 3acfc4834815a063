//! Decoding steered by a [`Cursor`]: each token is chosen among those the schema allows,
//! that ground their names and numbers in the source (with `ground_in`), and that the token
//! budget can still complete; when the budget runs low the document is closed with its
//! shortest completion, and an array item or string that starts to loop is cut.

use std::collections::HashMap;
use std::sync::Arc;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::token::LlamaToken;
use mediaflow_plugin_api::{CancellationToken, PluginError};

use crate::ground::Source;
use crate::json::{Cursor, Node};

/// Candidates ranked by the model that are tried before settling for the valid ones found.
const SCAN: usize = 512;

/// What a guided generation wrote.
pub struct GuidedText {
    pub text: String,
    /// Tokens in `text` (a closing text counted as the model's vocabulary spells it).
    pub tokens: u32,
    /// `stop` (the document is complete, the model ended or a stop string came), `budget`
    /// (closed at the budget) or, for free text, `length`.
    pub finish: &'static str,
    /// What the decoder changed, in words.
    pub repairs: Vec<String>,
}

/// What one sequence's decoding needs; owned, so a sequence can wait in a batch.
pub struct Setup<'m> {
    pub model: &'m LlamaModel,
    /// The sequence's id in the (shared) context.
    pub seq: i32,
    pub prompt_tokens: usize,
    pub n_ctx: u32,
    pub max_tokens: u32,
    /// How many valid candidates the sampler chooses among (1 = greedy).
    pub keep: usize,
    pub cancel: CancellationToken,
    /// Names and numbers must begin entities of this source (`ground_in`).
    pub ground: Option<Source>,
    /// The top-level fields grounding checks (empty: every string, or all free text).
    pub fields: Vec<String>,
    /// Stop before any of these (free text only: JSON ends where its document does).
    pub stop: Vec<String>,
}

/// What a sequence wants after a step: these tokens decoded from position `pos` (the
/// last one's logits are the next step's), or nothing more.
pub enum Next<T> {
    Feed(Vec<LlamaToken>, u32),
    Done(T),
}

enum Choice {
    Token(LlamaToken),
    /// Nothing valid fits the budget: write the completion.
    Close,
    /// The text may end here and the model chose to.
    End,
}

/// One guided generation, a token per [`Guided::step`].
pub struct Guided<'m> {
    setup: Setup<'m>,
    root: Option<Arc<Node>>,
    cursor: Cursor,
    pieces: HashMap<i32, Vec<u8>>,
    /// The generated tokens with where each one's bytes end in the text.
    tokens: Vec<(LlamaToken, usize)>,
    repairs: Vec<String>,
    /// Repairs give tokens back; this bounds the work however often they do.
    steps: u32,
}

/// The error of a call cancelled (a timeout, a cancelled run) after `made` tokens; the
/// plugin process writes its message to stderr.
pub fn cancelled(made: usize, max_tokens: u32) -> PluginError {
    PluginError::new(
        "cancelled",
        format!("the generation was cancelled after {made} of {max_tokens} tokens"),
    )
}

fn decode_err(e: impl std::fmt::Display) -> PluginError {
    PluginError::new("decode", format!("generation failed: {e}")).retryable()
}

impl<'m> Guided<'m> {
    /// Generates with `root`'s schema enforced (free text without one).
    pub fn new(setup: Setup<'m>, root: Option<Arc<Node>>) -> Self {
        Guided {
            setup,
            cursor: root.clone().map_or_else(Cursor::free, Cursor::new),
            root,
            pieces: HashMap::new(),
            tokens: Vec::new(),
            repairs: Vec::new(),
            steps: 0,
        }
    }

    /// Tokens generated so far.
    pub fn generated(&self) -> usize {
        self.tokens.len()
    }

    fn piece(&mut self, t: LlamaToken) -> &[u8] {
        let model = self.setup.model;
        self.pieces
            .entry(t.0)
            .or_insert_with(|| model.vocab().token_to_piece(t, false, None))
    }

    /// Tokens that `text` takes, at most: the byte count is a bound, and the tokenizer
    /// is asked only when that bound does not fit `room`.
    fn fits(&self, text: &[u8], room: u32) -> bool {
        text.len() as u32 <= room
            || (self.setup.model.vocab().tokenize(text, false, false).len() as u32) <= room
    }

    /// One token, chosen from the logits at `idx` of the last decoded batch.
    pub fn step(
        &mut self,
        ctx: &mut LlamaContext,
        idx: i32,
        sampler: &mut LlamaSampler,
    ) -> Result<Next<GuidedText>, PluginError> {
        let setup = &self.setup;
        if setup.cancel.is_cancelled() {
            return Err(cancelled(self.tokens.len(), setup.max_tokens));
        }
        if self.cursor.is_done() {
            return Ok(self.finish("stop", 0, None));
        }
        let used = self.tokens.len() as u32;
        let pos = setup.prompt_tokens as u32 + used;
        let room = setup
            .max_tokens
            .saturating_sub(used)
            .min(setup.n_ctx.saturating_sub(pos))
            .min((2 * setup.max_tokens).saturating_sub(self.steps));
        let choice = if self.fits(&self.cursor.completion(), room.saturating_sub(1)) {
            self.choose(ctx, idx, sampler, room)
        } else {
            Choice::Close
        };
        let token = match choice {
            Choice::End => return Ok(self.finish("stop", 0, None)),
            Choice::Close if self.cursor.is_free() => return Ok(self.finish("length", 0, None)),
            Choice::Close => {
                self.drop_unfinished_entity();
                let rest = self.cursor.completion();
                self.cursor.feed_all(&rest);
                let closing = self.setup.model.vocab().tokenize(&rest, false, false).len();
                self.repairs.push("closed at the token budget".to_owned());
                return Ok(self.finish("budget", closing, None));
            }
            Choice::Token(t) => t,
        };
        self.steps += 1;
        let piece = self.piece(token).to_vec();
        if !self.cursor.feed_all(&piece) {
            return Err(PluginError::new(
                "decode",
                "the structured decoder accepted a token it cannot read",
            ));
        }
        self.cursor.take_closed();
        self.tokens.push((token, self.cursor.text().len()));
        // Stop strings end free text; JSON ends where its document does.
        if let Some(cut) =
            stop_at(self.cursor.text(), &self.setup.stop).filter(|_| self.cursor.is_free())
        {
            return Ok(self.finish("stop", 0, Some(cut)));
        }
        if self.cursor.is_done() {
            return Ok(self.finish("stop", 0, None));
        }
        let item = self.cursor.repeated_item();
        let cut = item
            .map(|c| (c, false))
            .or_else(|| self.cursor.repeated_tail().map(|c| (c, true)));
        if let Some((cut, string)) = cut {
            if let Some(again) = self.repair(ctx, cut, string)? {
                self.repairs.push(if string {
                    "cut a string that repeated itself".to_owned()
                } else {
                    "cut a repeated array item and ended the array".to_owned()
                });
                return Ok(again);
            }
        }
        Ok(Next::Feed(vec![token], pos))
    }

    fn finish(
        &mut self,
        finish: &'static str,
        closing: usize,
        cut_at: Option<usize>,
    ) -> Next<GuidedText> {
        let text = self.cursor.text();
        Next::Done(GuidedText {
            text: String::from_utf8_lossy(&text[..cut_at.unwrap_or(text.len())]).into_owned(),
            tokens: (self.tokens.len() + closing) as u32,
            finish,
            repairs: std::mem::take(&mut self.repairs),
        })
    }

    fn choose(
        &mut self,
        ctx: &LlamaContext,
        idx: i32,
        sampler: &mut LlamaSampler,
        room: u32,
    ) -> Choice {
        if room == 0 {
            return Choice::Close;
        }
        let logits = ctx.get_logits_ith(idx);
        let mut order: Vec<usize> = (0..logits.len()).collect();
        let head = SCAN.min(order.len());
        if head < order.len() {
            order.select_nth_unstable_by(head, |a, b| logits[*b].total_cmp(&logits[*a]));
        }
        order[..head].sort_unstable_by(|a, b| logits[*b].total_cmp(&logits[*a]));
        let vocab = self.setup.model.vocab();
        let mut valid = Vec::new();
        for rank in 0..order.len() {
            if rank == head {
                // Past the head only the first valid token is wanted: rank the rest.
                if !valid.is_empty() {
                    break;
                }
                order[head..].sort_unstable_by(|a, b| logits[*b].total_cmp(&logits[*a]));
            }
            let id = order[rank];
            let t = LlamaToken(id as i32);
            if vocab.is_eog(t) {
                if self.cursor.can_end() {
                    valid.push(LlamaTokenData::new(t, logits[id], 0.0));
                }
                continue;
            }
            let piece = self.piece(t).to_vec();
            if piece.is_empty() {
                continue;
            }
            let mut probe = self.cursor.clone();
            if !probe.feed_all(&piece) || !self.grounded(&mut probe) {
                continue;
            }
            // This token, then the shortest way to finish, must fit what is left.
            if !self.fits(&probe.completion(), room - 1) {
                continue;
            }
            valid.push(LlamaTokenData::new(t, logits[id], 0.0));
            if valid.len() >= self.setup.keep {
                break;
            }
        }
        if valid.is_empty() {
            return Choice::Close;
        }
        let mut array = LlamaTokenDataArray::new(valid, false);
        array.apply_sampler(sampler);
        match array.selected_token() {
            Some(t) if vocab.is_eog(t) => Choice::End,
            Some(t) => {
                sampler.accept(t);
                Choice::Token(t)
            }
            None => Choice::Close,
        }
    }

    /// Whether the names and numbers `probe`'s last piece wrote into checked text begin
    /// (or, where they ended, are) source entities.
    fn grounded(&self, probe: &mut Cursor) -> bool {
        let Some(source) = self.setup.ground.as_ref() else {
            return true;
        };
        let before = self.cursor.text().len();
        let closed = probe.take_closed();
        let text = probe.text();
        let check = |start: usize, end: usize, closed: bool, json: bool| {
            let raw = String::from_utf8_lossy(&text[start..end]);
            let upto = String::from_utf8_lossy(&text[start..before.clamp(start, end)]).len();
            let (mut region, from) = if json {
                unescape(&raw, upto)
            } else {
                (raw.into_owned(), upto)
            };
            if closed {
                // The string's end decides whatever was still open in it.
                region.push('|');
            }
            source.allows(&region, from)
        };
        if probe.is_free() {
            return check(0, text.len(), false, false);
        }
        let wanted = |field: &Option<String>| self.checks(field);
        let field = probe.field();
        let open = probe.open_string();
        for (start, end, field) in closed {
            if end >= before && wanted(&field) && !check(start, end, true, true) {
                return false;
            }
        }
        match open {
            Some(start) if wanted(&field) => check(start, text.len(), false, true),
            _ => true,
        }
    }

    /// Whether grounding checks the strings of this top-level field.
    fn checks(&self, field: &Option<String>) -> bool {
        self.setup.fields.is_empty()
            || field
                .as_ref()
                .is_some_and(|f| self.setup.fields.contains(f))
    }

    /// Before closing at the budget: the close would end a name or number still being
    /// written ("Nitz" of "Nitzanim"); cut back, a word at a time, to where every one that
    /// ends is a source entity.
    fn drop_unfinished_entity(&mut self) {
        let (Some(source), Some(root)) = (self.setup.ground.as_ref(), self.root.clone()) else {
            return;
        };
        for _ in 0..16 {
            let Some(start) = self.cursor.open_string() else {
                return;
            };
            if !self.checks(&self.cursor.field()) {
                return;
            }
            let text = self.cursor.text();
            let raw = String::from_utf8_lossy(&text[start..]);
            let (mut region, from) = unescape(&raw, raw.len());
            region.push('|');
            if source.allows(&region, from) {
                return;
            }
            let cut = text[start..]
                .iter()
                .rposition(|b| *b == b' ')
                .map_or(start, |p| start + p);
            let mut shorter = Cursor::new(root.clone());
            if !shorter.feed_all(&text[..cut]) {
                return;
            }
            self.cursor = shorter;
        }
    }

    /// Cuts the text at byte `cut`, closes the string or array there, and puts the model's
    /// context back in step with the text: the tokens past the cut are forgotten and the
    /// kept bytes of the token the cut falls in are decoded again.
    fn repair(
        &mut self,
        ctx: &mut LlamaContext,
        cut: usize,
        string: bool,
    ) -> Result<Option<Next<GuidedText>>, PluginError> {
        let Some(cursor) =
            (self.root.clone()).and_then(|root| self.cursor.cut_and_close(root, cut, string))
        else {
            return Ok(None);
        };
        // Keep the whole tokens before the cut but the last one, and spell the rest again.
        let whole = self
            .tokens
            .iter()
            .take_while(|(_, end)| *end <= cut)
            .count();
        let keep = whole.saturating_sub(1);
        let from = keep.checked_sub(1).map_or(0, |i| self.tokens[i].1);
        let again = self
            .setup
            .model
            .vocab()
            .tokenize(&cursor.text()[from..cut], false, false);
        if again.is_empty() {
            return Ok(None);
        }
        let p0 = (self.setup.prompt_tokens + keep) as u32;
        ctx.clear_kv_cache_seq(Some(self.setup.seq as u32), Some(p0), None)
            .map_err(decode_err)?;
        self.tokens.truncate(keep);
        let mut end = from;
        for t in &again {
            end += self.piece(*t).len();
            self.tokens.push((*t, end.min(cut)));
        }
        self.cursor = cursor;
        Ok(Some(Next::Feed(again, p0)))
    }
}

/// Where the first of `stops` begins in `text`, if one occurs.
fn stop_at(text: &[u8], stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|s| text.windows(s.len().max(1)).position(|w| w == s.as_bytes()))
        .min()
}

/// A JSON string's raw content as text (escapes read; an unfinished one dropped), and where
/// raw byte `at` falls in it (an escape that reaches `at` counts from its start).
fn unescape(raw: &str, at: usize) -> (String, usize) {
    let mut out = String::with_capacity(raw.len());
    let mut mapped = None;
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        let start = out.len();
        let mut last = i;
        if c == '\\' {
            let mut next = || {
                let (j, e) = chars.next()?;
                last = j;
                Some(e)
            };
            match next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('b' | 'f') => out.push(' '),
                Some('u') => {
                    let hex: String = (0..4).map_while(|_| next()).collect();
                    match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                        Some(ch) if hex.len() == 4 => out.push(ch),
                        _ => out.push(' '),
                    }
                }
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
        if mapped.is_none() && last >= at {
            mapped = Some(start);
        }
    }
    let from = mapped.unwrap_or(out.len());
    (out, from)
}

#[cfg(test)]
mod tests {
    use super::unescape;

    #[test]
    fn escapes_are_read_and_an_offset_inside_one_maps_to_its_start() {
        let raw = r#"Year's'\nNew \u00e9"#;
        assert_eq!(unescape(raw, 0), ("Year's'\nNew é".to_owned(), 0));
        // Byte 8 is the `n` of `\n`: the newline it belongs to starts at 7.
        assert_eq!(unescape(raw, 8).1, 7);
        assert_eq!(unescape(raw, 9).1, 8);
        assert_eq!(unescape(r"ab\", 2), ("ab".to_owned(), 2));
    }
}
