//! Tests of [`super`]: operators, macros and functions, compile errors in
//! cel-go's words, the cost bound and Go's float formatting.

use super::*;
use serde_json::json;

fn run(rule: &str, this: Value) -> Result<Val, String> {
    let p = compile(rule, &json!({}), false, "bool")?;
    eval(&p, &from_json(&this, None), None)
}

fn err(rule: &str, this: Value) -> String {
    run(rule, this).err().unwrap_or_default()
}

fn yes(rule: &str, this: Value) {
    assert!(matches!(run(rule, this), Ok(Val::Bool(true))), "{rule}");
}

#[test]
fn operators_and_literals() {
    yes(
        "1 + 2 * 3 == 7 && 7 % 4 == 3 && 10 / 3 == 3 && -(-3) == 3",
        json!({}),
    );
    yes(
        "1u + 2u == 3u && 2.5 * 2.0 == 5.0 && 1 == 1.0 && 1 < 1.5",
        json!({}),
    );
    yes(
        "'ab' + \"c\" == 'abc' && [1, 2] + [3] == [1, 2, 3] && 2 in [1, 2]",
        json!({}),
    );
    yes(
        "{'a': 1}['a'] == 1 && 'a' in {'a': 1} && null == null",
        json!({}),
    );
    yes(
        "'a' < 'b' && false < true && (!(1 > 2) ? true : false)",
        json!({}),
    );
    yes(
        r"r'\d' == '\\d' && '\x41\u0042' == 'AB' && -9223372036854775808 < 0",
        json!({}),
    );
}

#[test]
fn fields_has_and_errors() {
    let obj = json!({"spec": {"x": [10, 20], "m": {"k": "v"}}});
    yes(
        "self.spec.x[1] == 20 && self.spec.m['k'] == 'v' && self.spec.m.k == 'v'",
        obj.clone(),
    );
    yes("has(self.spec.x) && !has(self.spec.y)", obj.clone());
    assert_eq!(err("self.spec.y == 1", obj.clone()), "no such key: y");
    assert_eq!(
        err("self.spec.x[5] == 1", obj.clone()),
        "index '5' out of range in list size '2'"
    );
    assert_eq!(err("1 / 0 == 1", obj.clone()), "division by zero");
    assert_eq!(err("9223372036854775807 + 1 > 0", obj.clone()), OVERFLOW);
    assert_eq!(err("1 + 'a' == 1", obj.clone()), NO_OVERLOAD);
    // A decisive side of && and || absorbs an error on the other.
    yes("self.spec.y == 1 || true", obj.clone());
    assert!(matches!(
        run("self.spec.y == 1 && false", obj),
        Ok(Val::Bool(false))
    ));
}

#[test]
fn macros_and_functions() {
    let obj = json!({"l": [1, 2, 3], "s": "Hello-World"});
    yes(
        "self.l.all(x, x > 0) && self.l.exists(x, x == 2) && self.l.exists_one(x, x > 2)",
        obj.clone(),
    );
    yes(
        "self.l.map(x, x * 2) == [2, 4, 6] && self.l.filter(x, x % 2 == 1) == [1, 3]",
        obj.clone(),
    );
    yes(
        "self.l.map(x, x > 1, x) == [2, 3] && {'a': 1}.all(k, k == 'a')",
        obj.clone(),
    );
    yes(
        "self.s.startsWith('He') && self.s.endsWith('ld') && self.s.contains('o-W')",
        obj.clone(),
    );
    yes(
        "self.s.matches('^[A-Z][a-z]+-') && matches(self.s, 'World$')",
        obj.clone(),
    );
    yes(
        "size(self.l) == 3 && self.s.size() == 11 && self.s.lowerAscii() == 'hello-world'",
        obj.clone(),
    );
    yes(
        "self.s.split('-') == ['Hello', 'World'] && ['a', 'b'].join('/') == 'a/b'",
        obj.clone(),
    );
    yes(
        "int('42') == 42 && string(7) == '7' && double(1) == 1.0 && uint(3) == 3u",
        obj,
    );
    yes(
        "[1, 2].all(x, x > 1) == false && [0, 1].exists(x, 1 / x == 1)",
        json!({}),
    );
}

#[test]
fn compile_errors_read_like_cel_go() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let fail = |src: &str| {
        compile(src, &schema, true, "bool")
            .err()
            .unwrap_or_default()
    };
    let e = fail("self.a ==");
    assert!(e.starts_with(
        "compilation failed: ERROR: <input>:1:10: Syntax error: mismatched input '<EOF>'"
    ));
    assert!(e.ends_with("\n | self.a ==\n | .........^"), "{e}");
    let e = fail("this does not compile");
    assert!(e.contains("<input>:1:6: Syntax error: mismatched input 'does' expecting <EOF>"));
    assert!(fail("foo == 1").contains("undeclared reference to 'foo' (in container '')"));
    assert!(fail("self.b == 1").contains("undefined field 'b'"));
    assert_eq!(fail("self.a"), "cel expression must evaluate to a bool");
    assert!(
        fail(&format!("{}true{}", "(".repeat(150), ")".repeat(150)))
            .contains("max recursion depth")
    );
    assert!(
        compile(
            "self.a > 0 && self.metadata.name != ''",
            &schema,
            true,
            "bool"
        )
        .is_ok()
    );
    assert!(compile("self == oldSelf", &schema, true, "bool").is_ok_and(|p| p.uses_old_self));
}

#[test]
fn cost_is_bounded() {
    let l: Vec<i64> = (0..2000).collect();
    assert_eq!(
        err(
            "self.l.all(x, self.l.all(y, x + y >= 0))",
            json!({ "l": l })
        ),
        COST_ERR
    );
}

#[test]
fn go_float_formatting() {
    let cases = [
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (123456.0, "123456"),
        (1e-5, "1e-05"),
        (-2.0, "-2"),
    ];
    for (f, want) in cases {
        assert_eq!(go_float(f), want);
    }
}
