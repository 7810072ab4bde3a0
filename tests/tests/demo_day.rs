//! README's main command: the day at the colmado runs, converges and passes its
//! own invariant checks; the files stay where `--data-dir` says.

#[test]
fn the_day_runs_converges_and_checks_its_invariants() {
    let dir = tempfile::tempdir().expect("tmp");
    let opts = caja_tests::day::DayOptions {
        data_dir: Some(dir.path().join("demo")),
        seed: 11,
    };
    let mut out = Vec::new();
    let summary = caja_tests::day::run(&opts, &mut out).expect("the day passes its checks");
    let text = String::from_utf8(out).expect("utf8");
    assert_eq!(summary.events.len(), 3);
    assert_eq!(
        summary.at_hub,
        summary.events.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert!(
        summary.audit_entries > summary.at_hub,
        "every event and action is audited"
    );
    assert!(text.contains("REPORTE Z"), "{text}");
    assert!(text.contains("Doña Rosa"), "{text}");
    assert!(text.contains("All checks passed"), "{text}");
    assert!(text.contains("stable at 1.250 kg"), "{text}");
    assert!(text.contains("Peso inestable"), "{text}");
    assert!(text.contains("opened the cash drawer"), "{text}");
    let receipt = dir.path().join("demo/caja-1/recibos/000001.txt");
    let paper = std::fs::read_to_string(&receipt).expect("a receipt in the folder printer");
    assert!(paper.contains("[CORTE]"), "{paper}");
    for name in [
        "hub/hub.db",
        "caja-1/caja-node.sqlite3",
        "caja-3/device.key",
    ] {
        assert!(dir.path().join("demo").join(name).exists(), "{name} kept");
    }
}
