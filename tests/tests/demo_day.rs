//! README's main command: the day at the colmado runs, converges and passes its
//! own invariant checks; the files stay where `--data-dir` says. Its sales
//! are e-CF signed with a throwaway certificate made with `openssl` (the
//! test skips without it, and fails under `CAJA_REQUIRE_EXTERNAL=1`).

fn require_external() -> bool {
    std::env::var("CAJA_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

#[test]
fn the_day_runs_converges_and_checks_its_invariants() {
    if std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_err()
    {
        assert!(
            !require_external(),
            "openssl not found and CAJA_REQUIRE_EXTERNAL=1"
        );
        eprintln!("SKIPPED (openssl): the demo signs e-CF with a certificate made by openssl");
        return;
    }
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
    // e-CF: signed at the registers, one E31 with its buyer, one offline,
    // every one at the emulator exactly once; the original receipt printed.
    assert!(summary.ecf_at_emulator > 3, "{summary:?}");
    for needle in [
        "caja-1 signed ",
        "caja-2 signed ",
        "caja-3 signed ",
        &format!(
            "DGII emulator: {} e-CF arrived exactly once each",
            summary.ecf_at_emulator
        ),
        "signed by caja-3 while offline",
        "with a tax-credit invoice, E31",
        "FACTURA DE CRÉDITO FISCAL ELECTRÓNICA",
        "Código de seguridad: ",
        "Fecha de firma: ",
        "[QR: https://ecf.dgii.gov.do/testecf/ConsultaTimbre?RncEmisor=",
        "RncComprador=101000015",
        "fiscal E32: ",
        "fiscal E31: ",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    if require_external() {
        assert!(text.contains("schema-validated with xmllint"), "{text}");
    }
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
