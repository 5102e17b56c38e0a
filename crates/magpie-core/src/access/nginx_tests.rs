//! nginx combined format: real lines, hostile lines, round trips.

use super::*;

fn event() -> AccessEvent {
    AccessEvent {
        at_ms: 1_709_294_400_000, // 2024-03-01T12:00:00Z
        ip: "203.0.113.7".parse().expect("ip"),
        user: Some(UserId(42)),
        method: "POST".into(),
        path: "/v1/messages".into(),
        status: 201,
        code: None,
        bytes: 57,
        latency_ms: 12.0,
        user_agent: Some("magpie-sdk/0.1".into()),
        miss: false,
    }
}

#[test]
fn formats_one_combined_line() {
    assert_eq!(
        format_combined(&event()),
        "203.0.113.7 - 42 [01/Mar/2024:12:00:00 +0000] \"POST /v1/messages HTTP/1.1\" \
         201 57 \"-\" \"magpie-sdk/0.1\" 0.012"
    );
}

#[test]
fn round_trips() {
    let mut e = event();
    assert_eq!(parse_combined(&format_combined(&e)), Ok(e.clone()));
    // A socket operation, an anonymous 404 with no user agent, IPv6.
    e.method = "WS".into();
    e.path = "send".into();
    e.ip = "2001:db8::1".parse().expect("ip");
    e.user = None;
    e.user_agent = None;
    e.status = 404;
    e.miss = true;
    let line = format_combined(&e);
    assert!(line.contains("\"WS send HTTP/1.1\""), "{line}");
    assert_eq!(parse_combined(&line), Ok(e.clone()));
    // What the format cannot carry: the code, sub-second time and latency.
    let mut lossy = e.clone();
    lossy.code = Some("not_found".into());
    lossy.at_ms += 999;
    lossy.latency_ms = 12.4;
    e.latency_ms = 12.0;
    assert_eq!(parse_combined(&format_combined(&lossy)), Ok(e));
}

#[test]
fn real_lines() {
    // The classic example from the Apache/nginx documentation.
    let e = parse_combined(
        r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)""#,
    )
    .expect("parses");
    assert_eq!(e.at_ms, 971_211_336_000);
    assert_eq!(e.ip.to_string(), "127.0.0.1");
    assert_eq!(e.user, None, "a non-numeric user is no Magpie user");
    assert_eq!(
        (e.method.as_str(), e.path.as_str()),
        ("GET", "/apache_pb.gif")
    );
    assert_eq!((e.status, e.bytes, e.latency_ms), (200, 2326, 0.0));
    assert_eq!(
        e.user_agent.as_deref(),
        Some("Mozilla/4.08 [en] (Win98; I ;Nav)")
    );
    assert!(!e.miss);

    let e = parse_combined(
        r#"93.180.71.3 - - [17/May/2015:08:05:32 +0000] "GET /downloads/product_1 HTTP/1.1" 304 0 "-" "Debian APT-HTTP/1.3 (0.8.16~exp12ubuntu10.21)""#,
    )
    .expect("parses");
    assert_eq!((e.status, e.bytes, e.user), (304, 0, None));

    // IPv6, a query, a numeric user, $request_time and $upstream_response_time appended.
    let e = parse_combined(
        r#"2001:db8:85a3::8a2e:370:7334 - 7 [01/Mar/2024:13:00:00 +0100] "GET /v1/users/9?fields=name HTTP/2.0" 404 31 "-" "curl/8.5.0" 0.0125 0.010"#,
    )
    .expect("parses");
    assert_eq!(e.ip.to_string(), "2001:db8:85a3::8a2e:370:7334");
    assert_eq!(e.at_ms, 1_709_294_400_000);
    assert_eq!((e.user, e.path.as_str()), (Some(UserId(7)), "/v1/users/9"));
    assert_eq!(e.latency_ms, 13.0, "milliseconds, rounded");
    assert!(e.miss, "a 404 is a miss");
}

#[test]
fn garbage_request_lines_keep_their_event() {
    // A TLS client hello sent to a plain-HTTP port, as nginx escapes it.
    let e = parse_combined(
        r#"198.51.100.9 - - [01/Mar/2024:12:00:01 +0000] "\x16\x03\x01\x00\xA5\x01\x00\x00\xA1\x03\x03" 400 157 "-" "-""#,
    )
    .expect("parses");
    assert_eq!(
        (e.method.as_str(), e.path.as_str(), e.status),
        ("-", "-", 400)
    );
    assert_eq!(e.user_agent, None);
    for request in [
        "-",
        "",
        "GET",
        "GET ?only-a-query HTTP/1.1",
        "G\\x00T / HTTP/1.1",
    ] {
        let line =
            format!("10.0.0.1 - - [01/Mar/2024:12:00:01 +0000] \"{request}\" 400 0 \"-\" \"-\"");
        let e = parse_combined(&line).expect("parses");
        assert_eq!(
            (e.method.as_str(), e.path.as_str()),
            ("-", "-"),
            "{request}"
        );
        assert_eq!(parse_combined(&format_combined(&e)), Ok(e));
    }
}

#[test]
fn a_hostile_user_agent_cannot_forge_fields() {
    let mut e = event();
    e.user_agent = Some("x\" 0.001 \"\\\n\u{7f}é".into());
    e.path = "/a\"b c".into();
    let line = format_combined(&e);
    assert!(
        line.ends_with(r#""x\x22 0.001 \x22\x5C\x0A\x7F\xC3\xA9" 0.012"#),
        "{line}"
    );
    assert_eq!(line.matches('"').count(), 6, "{line}");
    assert_eq!(parse_combined(&line), Ok(e));
}

#[test]
fn escaped_quotes_in_real_lines() {
    // nginx's escaping, and escape=json's.
    for ua in [
        r#"Mozilla/5.0 \x22evil\x22 \x5C"#,
        r#"Mozilla/5.0 \"evil\" \\"#,
    ] {
        let line = format!(
            "10.0.0.1 - - [01/Mar/2024:12:00:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"{ua}\" 0.5"
        );
        let e = parse_combined(&line).expect("parses");
        assert_eq!(e.user_agent.as_deref(), Some(r#"Mozilla/5.0 "evil" \"#));
        assert_eq!(e.latency_ms, 500.0);
    }
}

#[test]
fn common_format_and_odd_fields() {
    let e =
        parse_combined("10.0.0.1 - - [01/Mar/2024:12:00:01 +0000] \"GET / HTTP/1.1\" 200 -\r\n")
            .expect("common format");
    assert_eq!((e.bytes, e.user_agent), (0, None));
    let e = parse_combined(
        "10.0.0.1 - - [01/Mar/2024:12:00:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\" - junk",
    )
    .expect("a non-numeric extra field");
    assert_eq!(e.latency_ms, 0.0);
}

#[test]
fn errors() {
    let t = "[01/Mar/2024:12:00:01 +0000]";
    let cases = [
        (String::new(), ParseError::Empty),
        ("   ".to_string(), ParseError::Empty),
        ("10.0.0.1".to_string(), ParseError::Missing("remote_user")),
        (
            format!("nonsense - - {t} \"-\" 400 0"),
            ParseError::bad("remote_addr", "nonsense"),
        ),
        (
            "10.0.0.1 x - [".to_string(),
            ParseError::Missing("remote_user"),
        ),
        (
            "10.0.0.1 - - 01/Mar".to_string(),
            ParseError::Missing("time_local"),
        ),
        (
            "10.0.0.1 - - [yesterday] \"-\" 1 2".to_string(),
            ParseError::bad("time_local", "yesterday"),
        ),
        (
            format!("10.0.0.1 - - {t} \"GET /"),
            ParseError::Missing("request"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\""),
            ParseError::Missing("status"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\" ok 1"),
            ParseError::bad("status", "ok"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\" 70000 1"),
            ParseError::bad("status", "70000"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\" 200"),
            ParseError::Missing("body_bytes_sent"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\" 200 -1"),
            ParseError::bad("body_bytes_sent", "-1"),
        ),
        (
            format!("10.0.0.1 - - {t} \"-\" 200 1 -"),
            ParseError::Missing("http_referer"),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(parse_combined(&line), Err(want), "{line}");
    }
}
