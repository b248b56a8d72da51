//! The `condition` of a user rule: a boolean expression over the rule's
//! selections, as in Sigma.
//!
//! ```text
//! expr    := or
//! or      := and ("or" and)*
//! and     := not ("and" not)*
//! not     := "not" not | primary
//! primary := "(" expr ")" | quant | NAME
//! quant   := ("1" | "any" | N | "all") "of" (PATTERN | "them")
//! ```
//!
//! `not` binds tighter than `and`, which binds tighter than `or`. Keywords
//! are case-insensitive. A PATTERN is a selection name with `*` wildcards
//! (`sel*`, `*_filter`); it must match at least one selection. `them` is
//! every selection whose name does not start with `_`. `1 of` (`any of`) is
//! an `or` of the matched selections, `all of` an `and`, `N of` holds when at
//! least N of them do.

/// A compiled condition over selection numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// The selection with this number holds.
    Sel(usize),
    /// The inner expression does not hold.
    Not(Box<Expr>),
    /// Every inner expression holds.
    And(Vec<Expr>),
    /// At least one inner expression holds.
    Or(Vec<Expr>),
    /// At least this many inner expressions hold.
    AtLeast(usize, Vec<Expr>),
}

impl Expr {
    /// The selections the expression uses.
    pub(crate) fn selections(&self, out: &mut Vec<usize>) {
        match self {
            Expr::Sel(i) => out.push(*i),
            Expr::Not(e) => e.selections(out),
            Expr::And(v) | Expr::Or(v) | Expr::AtLeast(_, v) => {
                for e in v {
                    e.selections(out);
                }
            }
        }
    }

    /// Evaluates with `sel(i)` deciding selection `i`; `and`/`or` stop at
    /// the first child that decides.
    pub(crate) fn eval(&self, sel: &mut impl FnMut(usize) -> bool) -> bool {
        match self {
            Expr::Sel(i) => sel(*i),
            Expr::Not(e) => !e.eval(sel),
            Expr::And(v) => v.iter().all(|e| e.eval(sel)),
            Expr::Or(v) => v.iter().any(|e| e.eval(sel)),
            Expr::AtLeast(n, v) => {
                let mut hits = 0;
                for (i, e) in v.iter().enumerate() {
                    if e.eval(sel) {
                        hits += 1;
                        if hits >= *n {
                            return true;
                        }
                    }
                    // Not enough left to reach n.
                    if hits + (v.len() - i - 1) < *n {
                        return false;
                    }
                }
                hits >= *n
            }
        }
    }

    /// Orders the children of `and`/`or` by `cost` (cheapest first): the
    /// result is the same, the cheap tests run first.
    pub(crate) fn order_by(&mut self, cost: &impl Fn(usize) -> u8) -> u8 {
        match self {
            Expr::Sel(i) => cost(*i),
            Expr::Not(e) => e.order_by(cost),
            Expr::And(v) | Expr::Or(v) | Expr::AtLeast(_, v) => {
                let mut costs: Vec<(u8, Expr)> = v.drain(..).map(|mut e| (e.order_by(cost), e)).collect();
                costs.sort_by_key(|(c, _)| *c);
                let (lo, hi) = (costs.first().map_or(0, |c| c.0), costs.last().map_or(0, |c| c.0));
                v.extend(costs.into_iter().map(|(_, e)| e));
                match self {
                    // An `and` is usually decided (false) by its cheapest child.
                    Expr::And(_) => lo,
                    _ => hi,
                }
            }
        }
    }
}

/// A condition that cannot be read: where (byte offset), what, the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CondError {
    pub(crate) offset: usize,
    pub(crate) message: String,
    pub(crate) fix: String,
}

/// Longest condition accepted, in bytes.
pub(crate) const MAX_CONDITION: usize = 4096;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Tok<'s> {
    Open,
    Close,
    Word(&'s str),
}

fn tokenize(s: &str) -> Result<Vec<(usize, Tok<'_>)>, CondError> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'(' {
            out.push((i, Tok::Open));
            i += 1;
        } else if c == b')' {
            out.push((i, Tok::Close));
            i += 1;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'*' || c == b'-' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'*' | b'-')) {
                i += 1;
            }
            out.push((start, Tok::Word(&s[start..i])));
        } else {
            let ch = s[i..].chars().next().unwrap_or('?');
            return Err(CondError {
                offset: i,
                message: format!("unexpected character {ch:?} in the condition"),
                fix:
                    "write selection names joined by and, or, not, parentheses, `1 of NAME*` or `all of them`"
                        .into(),
            });
        }
    }
    Ok(out)
}

fn is_kw(w: &str, kw: &str) -> bool {
    w.eq_ignore_ascii_case(kw)
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "of", "them", "all", "any"]
        .iter()
        .any(|k| is_kw(w, k))
}

struct Parser<'s, 'n> {
    src: &'s str,
    toks: Vec<(usize, Tok<'s>)>,
    at: usize,
    names: &'n [String],
    depth: usize,
}

/// Parses `src` over the selections `names` (the number of a selection is
/// its index in `names`).
pub(crate) fn parse(src: &str, names: &[String]) -> Result<Expr, CondError> {
    if src.len() > MAX_CONDITION {
        return Err(CondError {
            offset: 0,
            message: format!("the condition is {} bytes long", src.len()),
            fix: format!("keep it under {MAX_CONDITION} bytes; group selections with `1 of sel*`"),
        });
    }
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(CondError {
            offset: 0,
            message: "the condition is empty".into(),
            fix: "name the selections that must hold, e.g. `selection and not filter`".into(),
        });
    }
    let mut p = Parser {
        src,
        toks,
        at: 0,
        names,
        depth: 0,
    };
    let e = p.or()?;
    if let Some((off, t)) = p.toks.get(p.at) {
        let what = match t {
            Tok::Close => "an unmatched `)`".to_owned(),
            Tok::Open => "`(`".to_owned(),
            Tok::Word(w) => format!("`{w}`"),
        };
        return Err(CondError {
            offset: *off,
            message: format!("unexpected {what} in the condition"),
            fix: "join expressions with `and` or `or`, and close every `(`".into(),
        });
    }
    Ok(e)
}

impl<'s> Parser<'s, '_> {
    fn peek(&self) -> Option<&Tok<'s>> {
        self.toks.get(self.at).map(|(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.at).map_or(self.src.len(), |(o, _)| *o)
    }

    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if is_kw(w, kw))
    }

    fn deeper(&mut self) -> Result<(), CondError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(CondError {
                offset: self.offset(),
                message: format!("the condition nests deeper than {MAX_DEPTH} levels"),
                fix: "simplify it; `1 of sel*` and `all of sel*` replace long chains".into(),
            });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, CondError> {
        let mut v = vec![self.and()?];
        while self.peek_kw("or") {
            self.at += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Expr::Or(v) })
    }

    fn and(&mut self) -> Result<Expr, CondError> {
        let mut v = vec![self.not()?];
        while self.peek_kw("and") {
            self.at += 1;
            v.push(self.not()?);
        }
        Ok(if v.len() == 1 { v.remove(0) } else { Expr::And(v) })
    }

    fn not(&mut self) -> Result<Expr, CondError> {
        if self.peek_kw("not") {
            self.at += 1;
            self.deeper()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(e)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, CondError> {
        let off = self.offset();
        match self.toks.get(self.at).map(|(_, t)| t.clone()) {
            None => Err(CondError {
                offset: off,
                message: "the condition ends where a selection name was expected".into(),
                fix: "complete the expression after the last `and`, `or`, `not` or `(`".into(),
            }),
            Some(Tok::Open) => {
                self.at += 1;
                self.deeper()?;
                let e = self.or()?;
                self.depth -= 1;
                if self.peek() != Some(&Tok::Close) {
                    return Err(CondError {
                        offset: self.offset(),
                        message: "`(` is not closed".into(),
                        fix: format!("add `)` to close the `(` at offset {off}"),
                    });
                }
                self.at += 1;
                Ok(e)
            }
            Some(Tok::Close) => Err(CondError {
                offset: off,
                message: "unexpected `)`".into(),
                fix: "put a selection name or `(` … `)` here".into(),
            }),
            Some(Tok::Word(w)) => {
                let quant = if is_kw(w, "all") {
                    Some(Quant::All)
                } else if is_kw(w, "any") {
                    Some(Quant::AtLeast(1))
                } else if w.bytes().all(|b| b.is_ascii_digit())
                    && matches!(self.toks.get(self.at + 1), Some((_, Tok::Word(o))) if is_kw(o, "of"))
                {
                    match w.parse::<usize>() {
                        Ok(n) if n >= 1 => Some(Quant::AtLeast(n)),
                        _ => {
                            return Err(CondError {
                                offset: off,
                                message: format!("`{w} of` needs at least one"),
                                fix: "write `1 of`, `all of` or a count from 1".into(),
                            });
                        }
                    }
                } else {
                    None
                };
                if let Some(q) = quant {
                    self.at += 1;
                    return self.quantified(q);
                }
                if is_keyword(w) {
                    return Err(CondError {
                        offset: off,
                        message: format!("`{w}` where a selection name was expected"),
                        fix: "put a selection name, `not`, `(`, `1 of …` or `all of …` here".into(),
                    });
                }
                if w.contains('*') {
                    return Err(CondError {
                        offset: off,
                        message: format!("the pattern `{w}` stands alone"),
                        fix: format!("write `1 of {w}` or `all of {w}`"),
                    });
                }
                self.at += 1;
                match self.names.iter().position(|n| n == w) {
                    Some(i) => Ok(Expr::Sel(i)),
                    None => Err(CondError {
                        offset: off,
                        message: format!("the condition names `{w}`, which is no selection of this rule"),
                        fix: self.known_fix(w),
                    }),
                }
            }
        }
    }

    fn known_fix(&self, w: &str) -> String {
        if self.names.is_empty() {
            return "define the selection under `detection:`".into();
        }
        let mut near: Vec<(usize, &str)> = self
            .names
            .iter()
            .map(|n| (super::fields::edit_distance(w, n), n.as_str()))
            .collect();
        near.sort();
        format!(
            "define it under `detection:` or use one of: {}",
            near.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
        )
    }

    fn quantified(&mut self, q: Quant) -> Result<Expr, CondError> {
        if !self.peek_kw("of") {
            return Err(CondError {
                offset: self.offset(),
                message: "a quantifier without `of`".into(),
                fix: "write `1 of sel*`, `all of sel*` or `all of them`".into(),
            });
        }
        self.at += 1;
        let poff = self.offset();
        let pattern = match self.peek() {
            Some(Tok::Word(w)) => *w,
            _ => {
                return Err(CondError {
                    offset: poff,
                    message: "`of` without a pattern".into(),
                    fix: "write a selection name pattern (`sel*`) or `them` after `of`".into(),
                });
            }
        };
        self.at += 1;
        let matched: Vec<usize> = if is_kw(pattern, "them") {
            (0..self.names.len())
                .filter(|i| !self.names[*i].starts_with('_'))
                .collect()
        } else {
            (0..self.names.len())
                .filter(|i| glob(pattern.as_bytes(), self.names[*i].as_bytes()))
                .collect()
        };
        if matched.is_empty() {
            return Err(CondError {
                offset: poff,
                message: format!("`{pattern}` matches no selection of this rule"),
                fix: self.known_fix(pattern),
            });
        }
        if let Quant::AtLeast(n) = q
            && n > matched.len()
        {
            return Err(CondError {
                offset: poff,
                message: format!(
                    "`{n} of {pattern}` can never hold: it matches {} selection(s)",
                    matched.len()
                ),
                fix: format!("use a count from 1 to {}, or `all of {pattern}`", matched.len()),
            });
        }
        let v: Vec<Expr> = matched.into_iter().map(Expr::Sel).collect();
        Ok(match q {
            Quant::All => Expr::And(v),
            Quant::AtLeast(1) => Expr::Or(v),
            Quant::AtLeast(n) => Expr::AtLeast(n, v),
        })
    }
}

#[derive(Clone, Copy)]
enum Quant {
    All,
    AtLeast(usize),
}

/// `*`-only glob over names (no other wildcard).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut back: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            if p[pi] == b'*' {
                back = Some((pi + 1, si));
                pi += 1;
                continue;
            }
            if si < s.len() && p[pi] == s[si] {
                pi += 1;
                si += 1;
                continue;
            }
        } else if si == s.len() {
            return true;
        }
        match back {
            Some((bp, bs)) if bs < s.len() => {
                back = Some((bp, bs + 1));
                pi = bp;
                si = bs + 1;
            }
            _ => return false,
        }
    }
}
