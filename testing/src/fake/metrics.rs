//! CloudWatch metrics of the fake world, as GetMetricData documents them: datapoints put with a
//! timestamp, aggregated per period from the window's start (a period with no datapoint returns
//! nothing), statistics `Average`, `Sum`, `Minimum`, `Maximum`, `SampleCount` and percentiles
//! `pNN` (nearest rank), and metric math over other queries' ids: `+ - * /`, parentheses,
//! numbers and `FILL(id, value)`; an operation applies to the timestamps both sides have, a
//! division by zero gives no value (CloudWatch drops it).

use gitmoxi_deploy::analysis::queries::{MetricQuery, MetricRequest, QueryKind};
use std::collections::BTreeMap;

/// One datapoint.
#[derive(Debug, Clone)]
pub(crate) struct Datapoint {
    pub namespace: String,
    pub name: String,
    /// Sorted (name, value).
    pub dimensions: Vec<(String, String)>,
    pub at_ms: u64,
    pub value: f64,
}

/// The metric store.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub points: Vec<Datapoint>,
}

/// A series: period start (ms) → value.
type Series = BTreeMap<u64, f64>;

fn statistic(stat: &str, values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    match stat {
        "Average" => Some(values.iter().sum::<f64>() / n),
        "Sum" => Some(values.iter().sum()),
        "Minimum" => values.iter().copied().reduce(f64::min),
        "Maximum" => values.iter().copied().reduce(f64::max),
        "SampleCount" => Some(n),
        p => {
            let q: f64 = p.strip_prefix('p')?.parse().ok()?;
            values.sort_by(f64::total_cmp);
            let rank = ((q / 100.0) * n).ceil().max(1.0) as usize;
            Some(values[rank.min(values.len()) - 1])
        }
    }
}

impl Metrics {
    fn stat_series(&self, q: &gitmoxi_deploy::analysis::MetricSpec, start: u64, end: u64) -> Series {
        let mut dims = q.dimensions.clone();
        dims.sort();
        let period = q.period_secs.max(1) * 1000;
        let mut buckets: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for p in self.points.iter().filter(|p| p.namespace == q.namespace && p.name == q.metric_name && p.dimensions == dims) {
            if p.at_ms >= start && p.at_ms < end {
                let bucket = start + (p.at_ms - start) / period * period;
                buckets.entry(bucket).or_default().push(p.value);
            }
        }
        buckets.into_iter().filter_map(|(t, mut v)| statistic(&q.stat, &mut v).map(|s| (t, s))).collect()
    }

    /// GetMetricData: the values of each returned query, oldest first.
    pub fn get(&self, request: &MetricRequest) -> Result<BTreeMap<String, Vec<f64>>, String> {
        let mut series: BTreeMap<String, Series> = BTreeMap::new();
        let stats = request.queries.iter().filter(|q| matches!(q.kind, QueryKind::Stat(_)));
        let expressions = request.queries.iter().filter(|q| matches!(q.kind, QueryKind::Expression { .. }));
        for q in stats.chain(expressions) {
            let s = match &q.kind {
                QueryKind::Stat(m) => self.stat_series(m, request.start_ms, request.end_ms),
                QueryKind::Expression { expression, .. } => {
                    Parser { tokens: tokenize(expression)?, at: 0, series: &series }.expression()?.into_series()
                }
            };
            series.insert(q.id.clone(), s);
        }
        Ok(request
            .queries
            .iter()
            .filter(|q: &&MetricQuery| q.return_data)
            .map(|q| (q.id.clone(), series[&q.id].values().copied().collect()))
            .collect())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Ident(String),
    Op(char),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Token::Num(s.parse().map_err(|_| format!("bad number {s}"))?));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if "+-*/(),".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else {
            return Err(format!("Unsupported character {c} in the expression"));
        }
    }
    Ok(out)
}

/// A value of metric math: a scalar or a time series.
#[derive(Debug, Clone)]
enum Val {
    Scalar(f64),
    Series(Series),
}

impl Val {
    fn into_series(self) -> Series {
        match self {
            Val::Series(s) => s,
            Val::Scalar(_) => Series::new(),
        }
    }

    fn combine(self, other: Val, op: char) -> Val {
        let apply = |a: f64, b: f64| -> Option<f64> {
            match op {
                '+' => Some(a + b),
                '-' => Some(a - b),
                '*' => Some(a * b),
                _ if b == 0.0 => None,
                _ => Some(a / b),
            }
        };
        match (self, other) {
            (Val::Scalar(a), Val::Scalar(b)) => apply(a, b).map_or(Val::Series(Series::new()), Val::Scalar),
            (Val::Series(s), Val::Scalar(b)) => Val::Series(s.into_iter().filter_map(|(t, a)| apply(a, b).map(|v| (t, v))).collect()),
            (Val::Scalar(a), Val::Series(s)) => Val::Series(s.into_iter().filter_map(|(t, b)| apply(a, b).map(|v| (t, v))).collect()),
            (Val::Series(a), Val::Series(b)) => {
                Val::Series(a.into_iter().filter_map(|(t, x)| b.get(&t).and_then(|y| apply(x, *y)).map(|v| (t, v))).collect())
            }
        }
    }
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    series: &'a BTreeMap<String, Series>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        match self.tokens.get(self.at) {
            Some(Token::Op(o)) if *o == c => {
                self.at += 1;
                Ok(())
            }
            other => Err(format!("expected {c}, found {other:?}")),
        }
    }

    fn expression(&mut self) -> Result<Val, String> {
        let mut left = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            left = left.combine(self.term()?, op);
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Val, String> {
        let mut left = self.factor()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            left = left.combine(self.factor()?, op);
        }
        Ok(left)
    }

    fn factor(&mut self) -> Result<Val, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the expression ends too early")?;
        self.at += 1;
        match token {
            Token::Num(n) => Ok(Val::Scalar(n)),
            Token::Op('(') => {
                let v = self.expression()?;
                self.expect(')')?;
                Ok(v)
            }
            Token::Op('-') => Ok(Val::Scalar(0.0).combine(self.factor()?, '-')),
            Token::Ident(f) if f == "FILL" => {
                self.expect('(')?;
                let Token::Ident(id) = self.tokens.get(self.at).cloned().ok_or("FILL needs an id")? else {
                    return Err("FILL needs an id".into());
                };
                self.at += 1;
                self.expect(',')?;
                let Some(Token::Num(fill)) = self.tokens.get(self.at).cloned() else { return Err("FILL needs a number".into()) };
                self.at += 1;
                self.expect(')')?;
                let s = self.series.get(&id).ok_or(format!("unknown id {id}"))?;
                // FILL gives every timestamp any other series of the request has a value
                let mut all: Series = self.series.values().flat_map(|s| s.keys().map(|t| (*t, fill))).collect();
                all.extend(s.iter().map(|(t, v)| (*t, *v)));
                Ok(Val::Series(all))
            }
            Token::Ident(id) => self.series.get(&id).cloned().map(Val::Series).ok_or(format!("Unknown metric id {id} in the expression")),
            Token::Op(c) => Err(format!("unexpected {c}")),
        }
    }
}
