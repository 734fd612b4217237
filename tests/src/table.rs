//! Server-side `meta.k8s.io/v1` Table output for `kubectl get`: the Kubernetes JSONPath that
//! CRD `additionalPrinterColumns` use (client-go `util/jsonpath`, missing keys allowed), the
//! CRD table convertor, and kube-apiserver's printers for common built-in kinds. Rows are built
//! as the server builds them: always "wide", ages already rendered by `HumanDuration`.

use serde_json::{Map, Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod jsonpath;
mod printers;

pub use jsonpath::jsonpath;
use jsonpath::{find_results, print_value};
pub use printers::{builtin_columns, builtin_row};
use printers::{col, list, num, text};

/// One `TableColumnDefinition`, plus the JSONPath a CRD column reads (empty for built-ins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Column {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
    pub json_path: String,
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

// ---------------------------------------------------------------------------------------
// Tables

/// The printer columns of a CRD `spec.versions[]` item; a CRD without any gets `Age`.
pub fn crd_columns(version: &Value) -> Vec<Column> {
    let column = |c: &Value| {
        let mut column = col(
            text(c, "/name"),
            text(c, "/type"),
            0,
            text(c, "/description"),
        );
        column.format = text(c, "/format").into();
        column.priority = num(c, "/priority").try_into().unwrap_or(0);
        column.json_path = [text(c, "/jsonPath"), text(c, "/JSONPath")].concat();
        column
    };
    let columns: Vec<Column> = list(version, "/additionalPrinterColumns")
        .iter()
        .map(column)
        .collect();
    if !columns.is_empty() {
        return columns;
    }
    let mut age = col("Age", "date", 0, CREATION_DOC);
    age.json_path = ".metadata.creationTimestamp".into();
    vec![age]
}

/// A Table of custom resources as the CRD table convertor builds it, ages as of now.
pub fn build_table(
    columns: &[Column],
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
) -> Value {
    build_table_at(
        columns,
        objects,
        list_meta,
        include_object,
        SystemTime::now(),
    )
}

/// [`build_table`] with an explicit clock for `date` columns.
pub fn build_table_at(
    columns: &[Column],
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
    now: SystemTime,
) -> Value {
    let mut definitions = columns.to_vec();
    for c in definitions.iter_mut().filter(|c| c.description.is_empty()) {
        let path = &c.json_path;
        c.description = format!("Custom resource definition column (in JSONPath format): {path}");
    }
    let rows = objects.iter().map(|obj| {
        let cells = columns.iter().map(|c| crd_cell(c, obj, now));
        row(cells.collect(), obj, include_object, None)
    });
    table(&definitions, rows.collect(), &list_meta)
}

/// A Table of one built-in kind as kube-apiserver's printers build it (see [`builtin_row`]).
pub fn build_builtin_table(
    group: &str,
    kind: &str,
    objects: &[Value],
    list_meta: Value,
    include_object: &str,
    now: SystemTime,
) -> Value {
    let rows = objects.iter().map(|obj| {
        let cells = builtin_row(group, kind, obj, now).unwrap_or_default();
        let completed = match (kind, text(obj, "/status/phase")) {
            ("Pod", "Succeeded") => Some(("Succeeded", "The pod has completed successfully.")),
            ("Pod", "Failed") => Some(("Failed", "The pod failed.")),
            _ => None,
        };
        row(cells, obj, include_object, completed)
    });
    table(&builtin_columns(group, kind), rows.collect(), &list_meta)
}

/// The 400 message kube-apiserver gives for an `includeObject` it does not know.
pub fn validate_include_object(include_object: &str) -> Result<(), String> {
    match include_object {
        "" | "None" | "Metadata" | "Object" => Ok(()),
        other => Err(format!(
            "unrecognized includeObject value: {}",
            json!(other)
        )),
    }
}

fn table(columns: &[Column], rows: Vec<Value>, list_meta: &Value) -> Value {
    let keys = ["resourceVersion", "continue", "remainingItemCount"];
    let present = |k: &&str| {
        list_meta
            .get(*k)
            .filter(|v| !v.is_null() && **v != json!(""))
    };
    let metadata: Map<String, Value> = keys
        .iter()
        .filter_map(|k| Some((k.to_string(), present(k)?.clone())))
        .collect();
    let mut name = col("Name", "string", 0, NAME_DOC);
    name.format = "name".into();
    let definitions = std::iter::once(&name).chain(columns).map(|c| {
        json!({"name": c.name, "type": c.type_, "format": c.format,
               "description": c.description, "priority": c.priority})
    });
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata,
           "columnDefinitions": definitions.collect::<Vec<_>>(), "rows": rows})
}

/// A row: the Name cell first, then `cells`, with the object as `includeObject` asks.
fn row(cells: Vec<Value>, obj: &Value, include: &str, completed: Option<(&str, &str)>) -> Value {
    let metadata = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let object = match include {
        "None" => Value::Null,
        "Object" => obj.clone(),
        _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": metadata}),
    };
    let name = json!(text(obj, "/metadata/name"));
    let cells: Vec<Value> = std::iter::once(name).chain(cells).collect();
    let mut row = json!({"cells": cells, "object": object});
    if let Some((reason, message)) = completed {
        row["conditions"] =
            json!([{"type": "Completed", "status": "True", "reason": reason, "message": message}]);
    }
    row
}

/// `cellForJSONValue` / `PrintResults` for the first result of a CRD column's JSONPath.
fn crd_cell(column: &Column, obj: &Value, now: SystemTime) -> Value {
    let results = find_results(obj, &column.json_path).unwrap_or_default();
    let Some(value) = results
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
    else {
        return Value::Null;
    };
    match (column.type_.as_str(), &value) {
        ("string", v) => json!(print_value(v)),
        ("integer", Value::Number(n)) => {
            json!(n.as_i64().unwrap_or(n.as_f64().unwrap_or(0.0) as i64))
        }
        // Go encodes an integral float64 without a fraction.
        ("number", Value::Number(n)) => match n.as_f64().unwrap_or(f64::NAN) {
            f if f.fract() == 0.0 && f.abs() < 1e21 => json!(f as i64),
            f => json!(f),
        },
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => json!(age(s, now)),
        _ => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------
// Time

/// Go's `duration.HumanDuration`, the age format of `kubectl get`.
pub fn human_duration(d: Duration) -> String {
    human_duration_ns(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The age of a `metav1.Time` at `now` as the printers render it: `<unknown>` for the zero
/// time (empty), `<invalid>` for a timestamp that is not RFC3339.
pub fn age(timestamp: &str, now: SystemTime) -> String {
    match parse_time(timestamp) {
        Ok(Some(t)) => human_duration_ns(nanos_between(t, unix_nanos(now))),
        Ok(None) => "<unknown>".into(),
        Err(()) => "<invalid>".into(),
    }
}

fn human_duration_ns(d: i64) -> String {
    let seconds = d / 1_000_000_000;
    let (minutes, hours) = (seconds / 60, seconds / 3600);
    let two = |major: i64, unit: &str, minor: i64, minor_unit: &str| match minor {
        0 => format!("{major}{unit}"),
        _ => format!("{major}{unit}{minor}{minor_unit}"),
    };
    match () {
        _ if seconds < -1 => "<invalid>".into(),
        _ if seconds < 0 => "0s".into(),
        _ if seconds < 60 * 2 => format!("{seconds}s"),
        _ if minutes < 10 => two(minutes, "m", seconds % 60, "s"),
        _ if minutes < 60 * 3 => format!("{minutes}m"),
        _ if hours < 8 => two(hours, "h", minutes % 60, "m"),
        _ if hours < 48 => format!("{hours}h"),
        _ if hours < 24 * 8 => two(hours / 24, "d", hours % 24, "h"),
        _ if hours < 24 * 365 * 2 => format!("{}d", hours / 24),
        _ if hours < 24 * 365 * 8 => two(hours / 24 / 365, "y", (hours / 24) % 365, "d"),
        _ => format!("{}y", hours / 24 / 365),
    }
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => -i128::try_from(e.duration().as_nanos()).unwrap_or(i128::MAX),
    }
}

/// `later - earlier`, saturating like Go's `Time.Sub`.
fn nanos_between(earlier: i128, later: i128) -> i64 {
    let saturated = if later > earlier { i64::MAX } else { i64::MIN };
    i64::try_from(later - earlier).unwrap_or(saturated)
}

/// `metav1.Time` from a string: Ok(None) for the zero time ("" or "null").
fn parse_time(s: &str) -> Result<Option<i128>, ()> {
    match s {
        "" | "null" => Ok(None),
        _ => parse_rfc3339(s).map(Some).ok_or(()),
    }
}

/// Go's `time.Parse(time.RFC3339, s)` (which accepts fractional seconds) in Unix nanoseconds.
fn parse_rfc3339(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let t = s.get(from..from + len)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if !seps.iter().all(|(i, c)| b.get(*i) == Some(c)) {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let digits = b
        .get(20..)
        .unwrap_or_default()
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    let (mut i, mut nanos) = (19, 0);
    if b.get(19) == Some(&b'.') && digits > 0 {
        nanos = format!("{:0<9}", &s[20..20 + digits.min(9)]).parse().ok()?;
        i = 20 + digits;
    }
    let offset = match (b.get(i), b.len() - i) {
        (Some(b'Z'), 1) => 0,
        (Some(sign @ (b'+' | b'-')), 6) if b[i + 3] == b':' => {
            let (h, m) = (
                num(i + 1, 2).filter(|h| *h < 24)?,
                num(i + 4, 2).filter(|m| *m < 60)?,
            );
            if *sign == b'-' {
                -(h * 3600 + m * 60)
            } else {
                h * 3600 + m * 60
            }
        }
        _ => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 => 28 + i64::from(leap),
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let valid = (1..=12).contains(&month) && (1..=month_days).contains(&day);
    if !valid || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // days_from_civil (Howard Hinnant), shifted so that years start in March.
    let y = if month <= 2 { year - 1 } else { year };
    let (era, yoe) = (y.div_euclid(400), y.rem_euclid(400));
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86400 + hour * 3600 + minute * 60 + second - offset;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// `Time.UTC().Format(time.RFC3339)` of a creationTimestamp (the zero time if unset).
fn rfc3339_utc(timestamp: &str) -> String {
    let zero = -62_135_596_800 * 1_000_000_000;
    let nanos = parse_time(timestamp).ok().flatten().unwrap_or(zero);
    let secs = i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0);
    // civil_from_days (Howard Hinnant)
    let z = secs.div_euclid(86400) + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let rem = secs.rem_euclid(86400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::jsonpath::go_float;
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    /// 2024-01-01T00:00:00Z, and "now" ten minutes later.
    const T0: u64 = 1_704_067_200;
    const NOW: u64 = T0 + 600;

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "web"}},
            "a": {"b": 1}, "a.b": 2,
            "spec": {"containers": [
                {"name": "app", "image": "nginx:1", "port": 80},
                {"name": "sidecar", "image": "envoy:2", "port": 9901, "ratio": 0.5}
            ]},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}
            ]}
        })
    }

    fn eval(expr: &str) -> Result<Vec<Value>, String> {
        jsonpath(&pod(), expr)
    }

    #[test]
    fn jsonpath_fields_arrays_and_filters() {
        let ready = ".status.conditions[?(@.type=='Ready')].status";
        assert_eq!(eval(ready), Ok(vec![json!("True")]));
        let not_ready = r#".status.conditions[?(@.type != "Ready")].type"#;
        assert_eq!(eval(not_ready), Ok(vec![json!("Synced")]));
        let images = eval(".spec.containers[*].image");
        assert_eq!(images, Ok(vec![json!("nginx:1"), json!("envoy:2")]));
        assert_eq!(
            eval(".spec.containers[-1].name"),
            Ok(vec![json!("sidecar")])
        );
        assert_eq!(eval(".spec.containers[0:1].name"), Ok(vec![json!("app")]));
        assert_eq!(
            eval(".spec.containers[?(@.port==80)].name"),
            Ok(vec![json!("app")])
        );
        assert_eq!(
            eval(".spec.containers[?(@.port>80)].name"),
            Ok(vec![json!("sidecar")])
        );
        assert_eq!(
            eval(".spec.containers[?(@.ratio)].name"),
            Ok(vec![json!("sidecar")])
        );
        let float = eval(".spec.containers[?(@.port==80.0)].name");
        assert_eq!(float, Err("incompatible types for comparison".into()));
        let union = eval(".spec.containers[0]['name','image']");
        assert_eq!(union, Ok(vec![json!("app"), json!("nginx:1")]));
        let names = eval("..name").unwrap();
        assert!(names.contains(&json!("web")) && names.contains(&json!("sidecar")));
    }

    #[test]
    fn jsonpath_keys_missing_values_and_errors() {
        assert_eq!(
            eval("['spec']['containers'][1]['port']"),
            Ok(vec![json!(9901)])
        );
        // Kubernetes treats a dotted key in brackets as a path; dots are escaped instead.
        assert_eq!(eval("['a.b']"), Ok(vec![json!(1)]));
        assert_eq!(eval(r"['a\.b']"), Ok(vec![json!(2)]));
        let escaped = eval(r".metadata.labels.app\.kubernetes\.io/name");
        assert_eq!(escaped, Ok(vec![json!("web")]));
        assert_eq!(eval(".status.missing.deeper"), Ok(vec![]));
        let out_of_bounds = "array index out of bounds: index 5, length 2";
        assert_eq!(eval(".spec.containers[5]"), Err(out_of_bounds.into()));
        assert_eq!(eval(".a[?(@.x=='y'"), Err("unterminated filter".into()));
        assert_eq!(
            eval(".spec[0]"),
            Err("map[string]interface {} is not array or slice".into())
        );
        let operator = eval(".spec.containers[?(@.port<>1)]");
        assert_eq!(operator, Err("unrecognized filter operator <>".into()));
    }

    #[test]
    fn go_formatting_of_floats_and_durations() {
        let floats = [
            (1_234_567.0, "1.234567e+06"),
            (0.5, "0.5"),
            (100.0, "100"),
            (1e-5, "1e-05"),
        ];
        for (f, text) in floats {
            assert_eq!(go_float(f), text);
        }
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 300, "3h5m"),
            (47 * 3600, "47h"),
            (51 * 3600, "2d3h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), text, "{secs}s");
        }
        assert_eq!(age("2024-01-01T00:00:01Z", at(T0)), "0s");
        assert_eq!(age("2024-01-01T00:00:05Z", at(T0)), "<invalid>");
        assert_eq!(age("2024-01-01T01:00:00+01:00", at(NOW)), "10m");
        assert_eq!(age("2023-12-31T23:55:00.5Z", at(NOW)), "14m");
        assert_eq!(age("", at(NOW)), "<unknown>");
        assert_eq!(age("yesterday", at(NOW)), "<invalid>");
        assert_eq!(
            rfc3339_utc("2024-01-01T01:00:00+01:00"),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(rfc3339_utc(""), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn controlplane_columns_with_and_without_status() {
        let columns = [
            (
                "SYNCED",
                "string",
                ".status.conditions[?(@.type=='Synced')].status",
            ),
            (
                "READY",
                "string",
                ".status.conditions[?(@.type=='Ready')].status",
            ),
            ("TYPE", "string", ".spec.type"),
            ("AGE", "date", ".metadata.creationTimestamp"),
        ];
        let columns: Vec<Value> = columns
            .iter()
            .map(|(name, type_, path)| json!({"name": name, "type": type_, "jsonPath": path}))
            .collect();
        let columns =
            crd_columns(&json!({"name": "v1alpha1", "additionalPrinterColumns": columns}));
        let ready = json!({"metadata": {"name": "cp1", "creationTimestamp": "2024-01-01T00:05:00Z"},
            "spec": {"type": "k8s"}, "status": {"conditions": [
                {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "True"}]}});
        let fresh = json!({"metadata": {"name": "cp2", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"type": "vcluster"}});
        let list_meta = json!({"resourceVersion": "42", "continue": ""});
        let table = build_table_at(&columns, &[ready, fresh], list_meta, "", at(NOW));
        assert_eq!(
            (&table["kind"], &table["apiVersion"]),
            (&json!("Table"), &json!("meta.k8s.io/v1"))
        );
        assert_eq!(table["metadata"], json!({"resourceVersion": "42"}));
        let definitions = table["columnDefinitions"].as_array().unwrap();
        let names: Vec<&str> = definitions
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["Name", "SYNCED", "READY", "TYPE", "AGE"]);
        assert_eq!(
            definitions[0],
            json!({"name": "Name", "type": "string", "format": "name",
            "description": NAME_DOC, "priority": 0})
        );
        let described = "Custom resource definition column (in JSONPath format): .spec.type";
        assert_eq!(definitions[3]["description"], described);
        assert_eq!(
            table["rows"][0]["cells"],
            json!(["cp1", "True", "True", "k8s", "5m"])
        );
        assert_eq!(
            table["rows"][1]["cells"],
            json!(["cp2", null, null, "vcluster", "10m"])
        );
        let object = &table["rows"][0]["object"];
        assert_eq!(
            (&object["kind"], &object["metadata"]["name"]),
            (&json!("PartialObjectMetadata"), &json!("cp1"))
        );
        let fresh = [json!({"metadata": {"name": "x"}, "spec": {"type": "k8s"}})];
        let none = build_table_at(&columns, &fresh, json!({}), "None", at(NOW));
        assert_eq!(none["rows"][0]["object"], Value::Null);
        let whole = build_table_at(&columns, &fresh, json!({}), "Object", at(NOW));
        assert_eq!(whole["rows"][0]["object"], fresh[0]);
        assert_eq!(
            crd_columns(&json!({"name": "v1"}))[0].json_path,
            ".metadata.creationTimestamp"
        );
        let unknown = validate_include_object("Everything");
        assert_eq!(
            unknown,
            Err(r#"unrecognized includeObject value: "Everything""#.into())
        );
    }

    #[test]
    fn crd_cells_follow_column_types() {
        let obj = json!({"spec": {"n": 3, "f": 2.0, "b": true, "m": {"k": "<v>"}, "z": null}});
        let cell = |type_: &str, path: &str| {
            let mut column = col("C", type_, 0, "");
            column.json_path = path.into();
            crd_cell(&column, &obj, at(NOW))
        };
        assert_eq!(cell("integer", ".spec.f"), json!(2));
        assert_eq!(cell("number", ".spec.n"), json!(3));
        assert_eq!(cell("boolean", ".spec.b"), json!(true));
        assert_eq!(cell("boolean", ".spec.n"), Value::Null);
        assert_eq!(cell("string", ".spec.n"), json!("3"));
        assert_eq!(cell("string", ".spec.m"), json!(r#"{"k":"\u003cv\u003e"}"#));
        assert_eq!(cell("string", ".spec.z"), json!("<no value>"));
        assert_eq!(cell("date", ".spec.b"), Value::Null);
    }

    #[test]
    fn pod_rows_as_kubectl_shows_them() {
        let running = json!({
            "metadata": {"name": "web", "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}],
                "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2024-01-01T00:07:00Z"}}}]}
        });
        let cells = builtin_row("", "Pod", &running, at(NOW)).unwrap();
        let expected = [
            "1/2",
            "CrashLoopBackOff",
            "2 (3m ago)",
            "10m",
            "10.0.0.5",
            "node-1",
            "<none>",
            "<none>",
        ];
        assert_eq!(cells, expected.map(|c| json!(c)));
        let init = json!({"spec": {"initContainers": [{"name": "i"}], "containers": [{"name": "a"}]},
            "status": {"phase": "Pending", "initContainerStatuses": [{"name": "i", "state": {"running": {}}}]}});
        assert_eq!(
            builtin_row("", "Pod", &init, at(NOW)).unwrap()[1],
            json!("Init:0/1")
        );
        let done = json!({"metadata": {"name": "job-x"}, "spec": {"containers": [{"name": "a"}]},
            "status": {"phase": "Succeeded", "containerStatuses": [{"name": "a",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
        let table = build_builtin_table("", "Pod", &[done], json!({}), "", at(NOW));
        assert_eq!(table["rows"][0]["cells"][2], json!("Completed"));
        assert_eq!(
            table["rows"][0]["conditions"][0]["reason"],
            json!("Succeeded")
        );
        let names: Vec<String> = builtin_columns("", "Pod")
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
    }

    #[test]
    fn workload_service_and_other_rows() {
        let row =
            |group: &str, kind: &str, obj: Value| builtin_row(group, kind, &obj, at(NOW)).unwrap();
        let created = json!({"name": "x", "creationTimestamp": "2024-01-01T00:00:00Z"});
        let deployment = json!({"metadata": created, "spec": {"replicas": 3,
            "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
            "template": {"spec": {"containers": [{"name": "c", "image": "i:1"}, {"name": "d", "image": "j:2"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let expected = json!([
            "2/3",
            3,
            2,
            "10m",
            "c,d",
            "i:1,j:2",
            "app=web,tier in (a,b)"
        ]);
        assert_eq!(json!(row("apps", "Deployment", deployment)), expected);
        let service = json!({"metadata": created, "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.10"],
            "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
        let expected = json!([
            "NodePort",
            "10.96.0.10",
            "<none>",
            "80:30080/TCP,53/UDP",
            "10m",
            "<none>"
        ]);
        assert_eq!(json!(row("", "Service", service)), expected);
        let job = json!({"metadata": created, "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": "2024-01-01T00:00:00Z", "completionTime": "2024-01-01T00:01:30Z",
                       "conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(
            json!(row("batch", "Job", job)[..3]),
            json!(["Complete", "1/1", "90s"])
        );
        let node = json!({"metadata": {"name": "n", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.33.0"}}});
        assert_eq!(
            json!(row("", "Node", node)[..4]),
            json!(["Ready", "control-plane", "<unknown>", "v1.33.0"])
        );
        let secret = json!({"metadata": created, "type": "Opaque", "data": {"a": "", "b": ""}});
        assert_eq!(
            json!(row("", "Secret", secret)),
            json!(["Opaque", 2, "10m"])
        );
        let binding = json!({"metadata": created, "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"}]});
        let expected = json!(["ClusterRole/view", "10m", "bob", "", "ns/sa"]);
        assert_eq!(
            json!(row("rbac.authorization.k8s.io", "RoleBinding", binding)),
            expected
        );
        let role = json!({"metadata": created, "rules": []});
        assert_eq!(
            row("rbac.authorization.k8s.io", "ClusterRole", role),
            [json!("2024-01-01T00:00:00Z")]
        );
        let default = builtin_columns("rbac.authorization.k8s.io", "ClusterRole");
        assert_eq!(
            (default[0].name.as_str(), default[0].type_.as_str()),
            ("Created At", "date")
        );
    }
}
