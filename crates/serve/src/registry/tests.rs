//! Tests of the registry's helpers (kept out of `registry.rs` so that the polling
//! and swapping code reads on its own).

use super::*;

#[test]
fn version_names() {
    assert_eq!(parse_version("1"), Some(1));
    assert_eq!(parse_version("0012"), Some(12));
    assert_eq!(parse_version(".1.partial-abc"), None);
    assert_eq!(parse_version("1.old-42"), None);
    assert_eq!(parse_version("-1"), None);
    assert_eq!(parse_version("+1"), None);
    assert_eq!(parse_version(""), None);
    assert_eq!(parse_version("99999999999999999999999"), None);
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(4), Duration::from_secs(8));
    assert_eq!(backoff(9), Duration::from_secs(256));
    assert_eq!(backoff(10), Duration::from_secs(300));
    assert_eq!(backoff(1000), Duration::from_secs(300));
}

#[test]
fn fingerprint_follows_content_changes() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("a"), b"1").unwrap();
    let f1 = fingerprint(d.path());
    assert_eq!(f1, fingerprint(d.path()));
    std::fs::write(d.path().join("a"), b"12").unwrap();
    let f2 = fingerprint(d.path());
    assert_ne!(f1, f2);
    std::fs::create_dir(d.path().join("member-0")).unwrap();
    std::fs::write(d.path().join("member-0/w"), b"x").unwrap();
    let f3 = fingerprint(d.path());
    assert_ne!(f2, f3);
    std::fs::write(d.path().join("member-0/w"), b"xy").unwrap();
    assert_ne!(f3, fingerprint(d.path()));
}

#[test]
fn messages_lose_the_base_path() {
    let loader: Loader = Arc::new(|_: &Path| Err("x".to_string()));
    let reg = Registry::new("/srv/models", loader, Vec::new());
    assert_eq!(
        reg.relative("/srv/models/ranking/3/weights.safetensors: checksum differs"),
        "ranking/3/weights.safetensors: checksum differs"
    );
    assert_eq!(
        reg.relative("no model under /srv/models"),
        "no model under ."
    );
}

#[test]
fn not_found_messages_start_with_tf_serving_wording() {
    let snap = Snapshot {
        base: PathBuf::from("models"),
        ..Snapshot::default()
    };
    let why = "The model base path models has no model \"m\" (expected models/m/<version>); models loaded: none (the server log says at start-up what the path holds)";
    assert_eq!(
        snap.servable("m", None).unwrap_err().to_string(),
        format!("Servable not found for request: Latest(m). {why}")
    );
    assert_eq!(
        snap.servable("m", Some(3)).unwrap_err().to_string(),
        format!("Servable not found for request: Specific(m, 3). {why}")
    );
    assert_eq!(
        snap.status("m", None).unwrap_err().to_string(),
        format!("Could not find any versions of model m. {why}")
    );
}
