//! Evaluation of compiled CEL programs: JSON converted to CEL values as the
//! schema types them, then a step-counted tree walk with cel-go's overloads,
//! equality, overflow checks and error texts. Also Go's float formatting,
//! which Kubernetes' messages use.

use std::cmp::Ordering;
use std::rc::Rc;

use regex::Regex;
use serde_json::Value;

use super::{
    COST_ERR, Expr, MAX_DEPTH, MAX_STEPS, Mac, NO_OVERLOAD, OVERFLOW, Op, Program, Val, unescape,
};

/// Converts a JSON value to CEL following its schema: `number` fields are
/// doubles even when integral, set and map lists compare without order.
pub(crate) fn from_json(v: &Value, s: Option<&Value>) -> Val {
    from_json_at(v, s, 0)
}

fn from_json_at(v: &Value, s: Option<&Value>, depth: usize) -> Val {
    let get = |k: &str| s.and_then(|s| s.get(k));
    match v {
        Value::Null => Val::Null,
        _ if depth > 2 * MAX_DEPTH => Val::Null,
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) if get("type").and_then(Value::as_str) != Some("number") => Val::Int(i),
            _ => Val::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(x) => Val::Str(x.as_str().into()),
        Value::Array(a) => {
            let unordered = matches!(
                get("x-kubernetes-list-type").and_then(Value::as_str),
                Some("set" | "map")
            );
            let items = get("items");
            Val::List(
                Rc::new(
                    a.iter()
                        .map(|x| from_json_at(x, items, depth + 1))
                        .collect(),
                ),
                unordered,
            )
        }
        Value::Object(m) => {
            let props = get("properties").and_then(Value::as_object);
            let ap = get("additionalProperties").filter(|a| a.is_object());
            let child = |k: &str| props.and_then(|p| p.get(k)).or(ap);
            let entries = m.iter().map(|(k, x)| {
                (
                    Val::Str(k.as_str().into()),
                    from_json_at(x, child(k), depth + 1),
                )
            });
            Val::Map(Rc::new(entries.collect()))
        }
    }
}

/// Evaluates a program with `self` and, for transition rules, `oldSelf`.
pub(crate) fn eval(p: &Program, this: &Val, old: Option<&Val>) -> Result<Val, String> {
    let mut ev = Eval {
        vars: vec![("self".to_string(), this.clone())],
        steps: 0,
    };
    if let Some(o) = old {
        ev.vars.push(("oldSelf".to_string(), o.clone()));
    }
    let r = ev.ev(&p.expr);
    if ev.steps > MAX_STEPS {
        Err(COST_ERR.to_string())
    } else {
        r
    }
}

struct Eval {
    vars: Vec<(String, Val)>,
    steps: u64,
}

impl Eval {
    fn ev(&mut self, e: &Expr) -> Result<Val, String> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(COST_ERR.to_string());
        }
        Ok(match e {
            Expr::Lit(v) => v.clone(),
            Expr::Ident(n, _) => match self.vars.iter().rev().find(|(k, _)| k == n) {
                Some((_, v)) => v.clone(),
                None => return Err(format!("no such attribute: {n}")),
            },
            Expr::Select(t, f, _) => match self.ev(t)? {
                Val::Map(m) => field(&m, f)
                    .cloned()
                    .ok_or_else(|| format!("no such key: {f}"))?,
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Has(t, f, _) => match self.ev(t)? {
                Val::Map(m) => Val::Bool(field(&m, f).is_some()),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Index(t, i) => {
                let (t, i) = (self.ev(t)?, self.ev(i)?);
                index(&t, &i)?
            }
            Expr::List(items) => {
                let v = items
                    .iter()
                    .map(|x| self.ev(x))
                    .collect::<Result<Vec<_>, _>>()?;
                Val::List(Rc::new(v), false)
            }
            Expr::Map(entries) => {
                let mut out: Vec<(Val, Val)> = Vec::new();
                for (k, v) in entries {
                    let k = self.ev(k)?;
                    if !matches!(k, Val::Str(_) | Val::Int(_) | Val::Uint(_) | Val::Bool(_)) {
                        return Err("unsupported key type".into());
                    }
                    if out.iter().any(|(o, _)| equal(o, &k)) {
                        return Err(format!("Failed with repeated key: {}", display(&k)));
                    }
                    out.push((k, self.ev(v)?));
                }
                Val::Map(Rc::new(out))
            }
            Expr::Not(x) => match self.ev(x)? {
                Val::Bool(b) => Val::Bool(!b),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Neg(x) => match self.ev(x)? {
                Val::Int(i) => Val::Int(i.checked_neg().ok_or(OVERFLOW)?),
                Val::Double(d) => Val::Double(-d),
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::And(a, b) => return self.logic(a, b, false),
            Expr::Or(a, b) => return self.logic(a, b, true),
            Expr::Cond(c, a, b) => match self.ev(c)? {
                Val::Bool(true) => self.ev(a)?,
                Val::Bool(false) => self.ev(b)?,
                _ => return Err(NO_OVERLOAD.into()),
            },
            Expr::Bin(op, a, b) => {
                let (x, y) = (self.ev(a)?, self.ev(b)?);
                binary(*op, &x, &y)?
            }
            Expr::Macro(m, t, var, a, b) => return self.mac(*m, t, var, a, b.as_deref()),
            Expr::Call(t, name, args, _) => {
                let t = t.as_ref().map(|t| self.ev(t)).transpose()?;
                let args = args
                    .iter()
                    .map(|x| self.ev(x))
                    .collect::<Result<Vec<_>, _>>()?;
                call(name, t.as_ref(), &args)?
            }
        })
    }

    /// `&&` and `||` are commutative over errors: a decisive side wins.
    fn logic(&mut self, a: &Expr, b: &Expr, or: bool) -> Result<Val, String> {
        let l = self.ev(a);
        if matches!(l, Ok(Val::Bool(x)) if x == or) {
            return Ok(Val::Bool(or));
        }
        let r = self.ev(b);
        if self.steps > MAX_STEPS {
            return Err(COST_ERR.into());
        }
        if matches!(r, Ok(Val::Bool(x)) if x == or) {
            return Ok(Val::Bool(or));
        }
        match (l, r) {
            (Ok(Val::Bool(_)), Ok(Val::Bool(_))) => Ok(Val::Bool(!or)),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            _ => Err(NO_OVERLOAD.into()),
        }
    }

    fn bind(&mut self, var: &str, x: Val, body: &Expr) -> Result<Val, String> {
        self.vars.push((var.to_string(), x));
        let r = self.ev(body);
        self.vars.pop();
        r
    }

    fn mac(
        &mut self,
        m: Mac,
        t: &Expr,
        var: &str,
        a: &Expr,
        b: Option<&Expr>,
    ) -> Result<Val, String> {
        let range: Vec<Val> = match self.ev(t)? {
            Val::List(l, _) => l.to_vec(),
            Val::Map(m) => m.iter().map(|(k, _)| k.clone()).collect(),
            _ => return Err(NO_OVERLOAD.into()),
        };
        let mut out = Vec::new();
        let mut count = 0;
        let mut err = None;
        for x in range {
            match m {
                Mac::All | Mac::Exists => match self.bind(var, x, a) {
                    Ok(Val::Bool(v)) if v == (m == Mac::Exists) => return Ok(Val::Bool(v)),
                    Ok(Val::Bool(_)) => {}
                    Err(e) if e == COST_ERR => return Err(e),
                    Ok(_) => _ = err.get_or_insert(NO_OVERLOAD.to_string()),
                    Err(e) => _ = err.get_or_insert(e),
                },
                Mac::ExistsOne => count += usize::from(truth(self.bind(var, x, a)?)?),
                Mac::Filter => {
                    if truth(self.bind(var, x.clone(), a)?)? {
                        out.push(x);
                    }
                }
                Mac::Map => match b {
                    Some(_) if !truth(self.bind(var, x.clone(), a)?)? => {}
                    Some(b) => out.push(self.bind(var, x, b)?),
                    None => out.push(self.bind(var, x, a)?),
                },
            }
        }
        match (m, err) {
            (Mac::All | Mac::Exists, Some(e)) => Err(e),
            (Mac::All | Mac::Exists, None) => Ok(Val::Bool(m == Mac::All)),
            (Mac::ExistsOne, _) => Ok(Val::Bool(count == 1)),
            _ => Ok(Val::List(Rc::new(out), false)),
        }
    }
}

fn truth(v: Val) -> Result<bool, String> {
    match v {
        Val::Bool(b) => Ok(b),
        _ => Err(NO_OVERLOAD.into()),
    }
}

fn lookup<'a>(m: &'a [(Val, Val)], k: &Val) -> Option<&'a Val> {
    m.iter().find(|(x, _)| equal(x, k)).map(|(_, v)| v)
}

fn field<'a>(m: &'a [(Val, Val)], f: &str) -> Option<&'a Val> {
    lookup(m, &Val::Str(f.into())).or_else(|| lookup(m, &Val::Str(unescape(f).into())))
}

fn display(v: &Val) -> String {
    match v {
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Uint(u) => u.to_string(),
        Val::Double(d) => go_float(*d),
        Val::Bool(b) => b.to_string(),
        _ => format!("{v:?}"),
    }
}

fn index(t: &Val, i: &Val) -> Result<Val, String> {
    match (t, i) {
        (Val::List(l, _), Val::Int(_) | Val::Uint(_) | Val::Double(_)) => {
            let n = match *i {
                Val::Int(n) => n,
                Val::Uint(u) => i64::try_from(u).unwrap_or(i64::MAX),
                Val::Double(d) if d.fract() == 0.0 && d.abs() < 9e18 => d as i64,
                _ => return Err(NO_OVERLOAD.into()),
            };
            let got = usize::try_from(n).ok().and_then(|u| l.get(u));
            got.cloned()
                .ok_or_else(|| format!("index '{n}' out of range in list size '{}'", l.len()))
        }
        (Val::Map(m), k) => lookup(m, k)
            .cloned()
            .ok_or_else(|| format!("no such key: {}", display(k))),
        _ => Err(NO_OVERLOAD.into()),
    }
}

/// CEL equality: numbers compare across int, uint and double; other
/// differently typed values are unequal.
fn equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x, ux), Val::List(y, uy)) => {
            x.len() == y.len()
                && if *ux || *uy {
                    x.iter().all(|e| y.iter().any(|f| equal(e, f)))
                        && y.iter().all(|f| x.iter().any(|e| equal(e, f)))
                } else {
                    x.iter().zip(y.iter()).all(|(e, f)| equal(e, f))
                }
        }
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| lookup(y, k).is_some_and(|w| equal(v, w)))
        }
        (Val::Opt(x), Val::Opt(y)) => match (x, y) {
            (Some(x), Some(y)) => equal(x, y),
            (None, None) => true,
            _ => false,
        },
        _ => compare(a, b).ok().flatten() == Some(Ordering::Equal),
    }
}

/// Ordering for `<` and friends; `None` for NaN, an error across types.
fn compare(a: &Val, b: &Val) -> Result<Option<Ordering>, String> {
    Ok(match (a, b) {
        (Val::Int(x), Val::Int(y)) => Some(x.cmp(y)),
        (Val::Uint(x), Val::Uint(y)) => Some(x.cmp(y)),
        (Val::Int(x), Val::Uint(y)) => Some(u64::try_from(*x).map_or(Ordering::Less, |x| x.cmp(y))),
        (Val::Uint(x), Val::Int(y)) => {
            Some(u64::try_from(*y).map_or(Ordering::Greater, |y| x.cmp(&y)))
        }
        (Val::Double(x), Val::Double(y)) => x.partial_cmp(y),
        (Val::Double(x), Val::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Double(x), Val::Uint(y)) => x.partial_cmp(&(*y as f64)),
        (Val::Int(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Uint(x), Val::Double(y)) => (*x as f64).partial_cmp(y),
        (Val::Str(x), Val::Str(y)) => Some(x.cmp(y)),
        (Val::Bool(x), Val::Bool(y)) => Some(x.cmp(y)),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

fn binary(op: Op, x: &Val, y: &Val) -> Result<Val, String> {
    use Val::{Double, Int, Str, Uint};
    let ord = |want: fn(Ordering) -> bool| compare(x, y).map(|o| Val::Bool(o.is_some_and(want)));
    Ok(match op {
        Op::Eq => Val::Bool(equal(x, y)),
        Op::Ne => Val::Bool(!equal(x, y)),
        Op::Lt => ord(Ordering::is_lt)?,
        Op::Le => ord(Ordering::is_le)?,
        Op::Gt => ord(Ordering::is_gt)?,
        Op::Ge => ord(Ordering::is_ge)?,
        Op::In => match y {
            Val::List(l, _) => Val::Bool(l.iter().any(|e| equal(e, x))),
            Val::Map(m) => Val::Bool(lookup(m, x).is_some()),
            _ => return Err(NO_OVERLOAD.into()),
        },
        _ => match (op, x, y) {
            (Op::Add, Int(a), Int(b)) => Int(a.checked_add(*b).ok_or(OVERFLOW)?),
            (Op::Sub, Int(a), Int(b)) => Int(a.checked_sub(*b).ok_or(OVERFLOW)?),
            (Op::Mul, Int(a), Int(b)) => Int(a.checked_mul(*b).ok_or(OVERFLOW)?),
            (Op::Div | Op::Rem, Int(_), Int(0)) | (Op::Div | Op::Rem, Uint(_), Uint(0)) => {
                return Err(if op == Op::Div {
                    "division by zero"
                } else {
                    "modulus by zero"
                }
                .into());
            }
            (Op::Div, Int(a), Int(b)) => Int(a.checked_div(*b).ok_or(OVERFLOW)?),
            (Op::Rem, Int(a), Int(b)) => Int(a.checked_rem(*b).ok_or(OVERFLOW)?),
            (Op::Add, Uint(a), Uint(b)) => Uint(a.checked_add(*b).ok_or(OVERFLOW)?),
            (Op::Sub, Uint(a), Uint(b)) => Uint(a.checked_sub(*b).ok_or(OVERFLOW)?),
            (Op::Mul, Uint(a), Uint(b)) => Uint(a.checked_mul(*b).ok_or(OVERFLOW)?),
            (Op::Div, Uint(a), Uint(b)) => Uint(a / b),
            (Op::Rem, Uint(a), Uint(b)) => Uint(a % b),
            (Op::Add, Double(a), Double(b)) => Double(a + b),
            (Op::Sub, Double(a), Double(b)) => Double(a - b),
            (Op::Mul, Double(a), Double(b)) => Double(a * b),
            (Op::Div, Double(a), Double(b)) => Double(a / b),
            (Op::Add, Str(a), Str(b)) => Str(format!("{a}{b}").into()),
            (Op::Add, Val::List(a, _), Val::List(b, _)) => {
                Val::List(Rc::new(a.iter().chain(b.iter()).cloned().collect()), false)
            }
            _ => return Err(NO_OVERLOAD.into()),
        },
    })
}

fn to_int(x: &Val) -> Result<Val, String> {
    Ok(Val::Int(match x {
        Val::Int(i) => *i,
        Val::Uint(u) => i64::try_from(*u).map_err(|_| "range error")?,
        Val::Double(d)
            if d.is_finite() && *d > -9.223_372_036_854_776e18 && *d < 9.223_372_036_854_776e18 =>
        {
            d.trunc() as i64
        }
        Val::Double(_) => return Err("range error".into()),
        Val::Str(s) => s
            .parse()
            .map_err(|_| format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))?,
        _ => return Err(NO_OVERLOAD.into()),
    }))
}

fn to_str(x: &Val) -> Result<Val, String> {
    Ok(match x {
        Val::Str(_) => x.clone(),
        Val::Int(_) | Val::Uint(_) | Val::Double(_) | Val::Bool(_) => Val::Str(display(x).into()),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

fn call(name: &str, t: Option<&Val>, args: &[Val]) -> Result<Val, String> {
    use Val::{Bool, Double, Int, List, Str, Uint};
    let s = |v: &str| Str(v.into());
    let strings = |l: &[Val]| -> Result<Vec<String>, String> {
        let one = |e: &Val| {
            if let Str(x) = e {
                Ok(x.to_string())
            } else {
                Err(NO_OVERLOAD.to_string())
            }
        };
        l.iter().map(one).collect()
    };
    Ok(match (name, t, args) {
        ("size", None, [x]) | ("size", Some(x), []) => match x {
            Str(v) => Int(v.chars().count() as i64),
            List(l, _) => Int(l.len() as i64),
            Val::Map(m) => Int(m.len() as i64),
            _ => return Err(NO_OVERLOAD.into()),
        },
        ("int", None, [x]) => to_int(x)?,
        ("uint", None, [Uint(u)]) => Uint(*u),
        ("uint", None, [x]) => match to_int(x)? {
            Int(i) => Uint(u64::try_from(i).map_err(|_| "range error")?),
            _ => return Err(NO_OVERLOAD.into()),
        },
        ("double", None, [Int(i)]) => Double(*i as f64),
        ("double", None, [Uint(u)]) => Double(*u as f64),
        ("double", None, [Double(d)]) => Double(*d),
        ("double", None, [Str(v)]) => match v.parse() {
            Ok(d) => Double(d),
            Err(_) => return Err(format!("strconv.ParseFloat: parsing {v:?}: invalid syntax")),
        },
        ("string", None, [x]) => to_str(x)?,
        ("dyn", None, [x]) => x.clone(),
        ("matches", None, [Str(v), Str(re)]) | ("matches", Some(Str(v)), [Str(re)]) => {
            let re = Regex::new(re).map_err(|e| format!("error parsing regexp: {e}"))?;
            Bool(re.is_match(v))
        }
        ("startsWith", Some(Str(v)), [Str(p)]) => Bool(v.starts_with(&**p)),
        ("endsWith", Some(Str(v)), [Str(p)]) => Bool(v.ends_with(&**p)),
        ("contains", Some(Str(v)), [Str(p)]) => Bool(v.contains(&**p)),
        ("lowerAscii", Some(Str(v)), []) => s(&v.to_ascii_lowercase()),
        ("upperAscii", Some(Str(v)), []) => s(&v.to_ascii_uppercase()),
        ("trim", Some(Str(v)), []) => s(v.trim()),
        ("split", Some(Str(v)), [Str(sep)]) => {
            List(Rc::new(v.split(&**sep).map(s).collect()), false)
        }
        ("replace", Some(Str(v)), [Str(a), Str(b)]) => s(&v.replace(&**a, b)),
        ("indexOf", Some(Str(v)), [Str(p)]) => {
            let at = v.find(&**p).map(|b| v[..b].chars().count() as i64);
            Int(at.unwrap_or(-1))
        }
        ("join", Some(List(l, _)), []) => s(&strings(l)?.concat()),
        ("join", Some(List(l, _)), [Str(sep)]) => s(&strings(l)?.join(sep)),
        ("hasValue", Some(Val::Opt(o)), []) => Bool(o.is_some()),
        ("value", Some(Val::Opt(o)), []) => {
            o.as_deref().cloned().ok_or("optional.none() dereference")?
        }
        ("orValue", Some(Val::Opt(o)), [d]) => o.as_deref().cloned().unwrap_or_else(|| d.clone()),
        _ => return Err(NO_OVERLOAD.into()),
    })
}

/// Go's `%v` for a float64 (`strconv.FormatFloat(f, 'g', -1, 64)`): shortest
/// digits, exponent form below 1e-4 and from 1e+06 up (Kubernetes' messages).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (head, tail) = digits.split_at(1);
        let frac = if tail.is_empty() {
            String::new()
        } else {
            format!(".{tail}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{head}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else {
        let p = point as usize;
        let int: String = digits
            .chars()
            .chain(std::iter::repeat('0'))
            .take(p.max(digits.len()))
            .collect();
        let (i, frac) = int.split_at(p);
        if frac.is_empty() {
            i.to_string()
        } else {
            format!("{i}.{frac}")
        }
    };
    format!("{sign}{body}")
}
