use super::*;

#[test]
fn versions() {
    assert_eq!(parse_version("v2_2_100"), Some((2, 2, 100)));
    assert_eq!(parse_version("v2_5_000"), Some((2, 5, 0)));
    assert_eq!(parse_version("5.22.3"), Some((5, 22, 3)));
    assert_eq!(parse_version("V2_5_000-rc1"), Some((2, 5, 0)));
    assert_eq!(parse_version("2.5.0-SNAPSHOT"), Some((2, 5, 0)));
    assert_eq!(parse_version("json"), None);
    assert_eq!(parse_version("v2_5"), None);
}

#[test]
fn basic_auth_splits_on_last_colon() {
    assert_eq!(
        decode_basic(Some("Basic dXNlcjpwYTpzcw==")),
        Some(("user:pa".into(), "ss".into()))
    );
    assert_eq!(decode_basic(Some("Bearer x")), None);
}

#[test]
fn decoding() {
    assert_eq!(percent_decode("aStem%3AaGroup"), "aStem:aGroup");
    assert_eq!(percent_decode("a+b%2"), "a b%2");
}
