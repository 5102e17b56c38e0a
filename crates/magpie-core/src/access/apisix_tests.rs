//! APISIX logger JSON: real lines, Magpie's own lines, errors.

use super::*;

/// The default log format's entry from APISIX's http-logger documentation
/// (3.9), on one line.
const DOC_LINE: &str = r#"{"upstream":"3.213.1.197:80","server":{"hostname":"7d8d831179d4","version":"3.9.0"},"start_time":1718291190508,"client_ip":"192.168.65.1","response":{"status":200,"headers":{"server":"APISIX/3.9.0","content-length":"390","connection":"close","content-type":"application/json"},"size":617},"latency":1200.0000476837,"upstream_latency":1133,"apisix_latency":67.000047683716,"request":{"url":"http://127.0.0.1:9080/anything","querystring":{},"method":"GET","uri":"/anything","headers":{"accept":"*/*","user-agent":"curl/8.6.0","host":"127.0.0.1:9080"},"size":85},"service_id":"","route_id":"http-logger-route"}"#;

/// An authenticated request through a key-auth consumer (IPv6, a query in
/// the uri, a 404), in APISIX 3.7's shape.
const CONSUMER_LINE: &str = r#"{"service_id":"","apisix_latency":100.99999809265,"start_time":1703907485819,"latency":101.99999809265,"upstream_latency":1,"client_ip":"2001:db8::7","route_id":"1","server":{"version":"3.7.0","hostname":"localhost"},"request":{"headers":{"host":"127.0.0.1:1984","user-agent":"lua-resty-http/0.16.1 (Lua) ngx_lua/10025"},"method":"POST","size":194,"url":"http://127.0.0.1:1984/v1/users/5?x=1","uri":"/v1/users/5?x=1","querystring":{"x":"1"}},"response":{"headers":{"content-type":"application/json"},"status":404,"size":123},"consumer":{"username":"31"},"upstream":"127.0.0.1:1982"}"#;

fn event() -> AccessEvent {
    AccessEvent {
        at_ms: 1_709_294_400_123,
        ip: "203.0.113.7".parse().expect("ip"),
        user: Some(UserId(42)),
        method: "WS".into(),
        path: "send".into(),
        status: 429,
        code: Some("rate_limited".into()),
        bytes: 57,
        latency_ms: 0.25,
        user_agent: Some("magpie-sdk/0.1 \"quoted\"".into()),
        miss: false,
    }
}

#[test]
fn documented_line() {
    let e = parse_apisix(DOC_LINE).expect("parses");
    assert_eq!(e.ip.to_string(), "192.168.65.1");
    assert_eq!(
        e.at_ms,
        1_718_291_190_508 + 1200,
        "the end: start plus latency"
    );
    assert_eq!(e.latency_ms, 1200.0, "to the microsecond");
    assert_eq!((e.method.as_str(), e.path.as_str()), ("GET", "/anything"));
    assert_eq!((e.status, e.bytes, e.user, e.code), (200, 617, None, None));
    assert_eq!(e.user_agent.as_deref(), Some("curl/8.6.0"));
    assert!(!e.miss);
}

#[test]
fn consumer_line() {
    let e = parse_apisix(CONSUMER_LINE).expect("parses");
    assert_eq!(e.ip.to_string(), "2001:db8::7");
    assert_eq!(e.at_ms, 1_703_907_485_819 + 102);
    assert_eq!(e.latency_ms, 102.0);
    assert_eq!(
        (e.method.as_str(), e.path.as_str()),
        ("POST", "/v1/users/5")
    );
    assert_eq!(e.user, Some(UserId(31)), "a numeric consumer is a user");
    assert!(e.miss, "a 404 is a miss");
}

#[test]
fn round_trips_exactly() {
    let mut e = event();
    let line = format_apisix(&e);
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(parse_apisix(&line), Ok(e.clone()));
    // It is what a real reader expects to find.
    let v: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(v["start_time"], json!(1_709_294_400_123_i64));
    assert_eq!(v["request"]["headers"]["user-agent"], json!(e.user_agent));
    assert_eq!(v["response"]["status"], json!(429));
    assert_eq!(v["consumer"]["username"], json!("42"));
    // Anonymous, IPv6, no user agent, a miss Magpie flagged on a 200.
    e.user = None;
    e.ip = "::1".parse().expect("ip");
    e.user_agent = None;
    e.code = None;
    e.miss = true;
    e.status = 200;
    e.latency_ms = 1.0 / 3.0;
    let back = parse_apisix(&format_apisix(&e)).expect("parses");
    e.latency_ms = 0.333; // to the microsecond
    assert_eq!(back, e);
}

#[test]
fn sparse_and_odd_lines() {
    let e = parse_apisix(r#"{"client_ip":"10.0.0.1","response":{"status":"503"}}"#)
        .expect("only the required fields");
    assert_eq!((e.at_ms, e.status, e.bytes), (0, 503, 0));
    assert_eq!((e.method.as_str(), e.path.as_str()), ("-", "-"));
    let e = parse_apisix(
        r#"{"client_ip":"10.0.0.1","response":{"status":200},"latency":-4,"start_time":5.6,
            "request":{"url":"https://h.example:8443/p/q?x","headers":{"User-Agent":"UA"}},
            "consumer":{"username":"alice"},"magpie":{"miss":"yes"}}"#,
    )
    .expect("parses");
    assert_eq!(
        (e.at_ms, e.latency_ms),
        (6, 0.0),
        "a negative latency is none"
    );
    assert_eq!(e.path, "/p/q", "the path of an absolute url");
    assert_eq!(e.user_agent.as_deref(), Some("UA"));
    assert_eq!((e.user, e.miss), (None, false));
    assert_eq!(url_path("http://h.example"), "/");
    assert_eq!(url_path("/x://y"), "/x://y");
}

#[test]
fn errors() {
    let cases = [
        ("", ParseError::Empty),
        (
            "[1,2]",
            ParseError::Json("a log line must be a JSON object".into()),
        ),
        (
            r#"{"response":{"status":200}}"#,
            ParseError::Missing("client_ip"),
        ),
        (
            r#"{"client_ip":"localhost","response":{"status":200}}"#,
            ParseError::bad("client_ip", "\"localhost\""),
        ),
        (
            r#"{"client_ip":"::1"}"#,
            ParseError::Missing("response.status"),
        ),
        (
            r#"{"client_ip":"::1","response":{"status":70000}}"#,
            ParseError::bad("response.status", "70000"),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse_apisix(line), Err(want), "{line}");
    }
    assert!(matches!(
        parse_apisix("{\"client_ip\":"),
        Err(ParseError::Json(_))
    ));
}
