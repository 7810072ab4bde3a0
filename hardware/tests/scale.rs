//! Scales against simulated scales on real pseudo-terminals: the simulator
//! writes frames to the pty master, the reader opens the slave path as a serial
//! port. One test per protocol path.

use std::time::{Duration, Instant};

use caja_hardware::scale::reader::{ScaleConfig, ScaleError, ScaleReader};
use caja_hardware::scale::sim::{Answer, SimScale};
use caja_hardware::scale::{cas, FrameError, Protocol, StatusFlags, WeighError};
use caja_shared::money::QtyMilli;

const TOLEDO: Protocol = Protocol::Toledo8217;
const CAS: Protocol = Protocol::CasPd2;

fn config(protocol: Protocol) -> ScaleConfig {
    ScaleConfig {
        answer_timeout: Duration::from_millis(200),
        poll_interval: Duration::from_millis(20),
        ..ScaleConfig::new(protocol)
    }
}

fn setup(protocol: Protocol, current: Answer) -> (SimScale, ScaleReader) {
    let sim = SimScale::start(protocol, current).expect("pty");
    let reader = ScaleReader::open(sim.path(), None, config(protocol)).expect("open slave");
    (sim, reader)
}

fn read(reader: &mut ScaleReader, ms: u64) -> Result<QtyMilli, ScaleError> {
    reader.read_stable(Duration::from_millis(ms))
}

fn rejected(r: Result<QtyMilli, ScaleError>) -> WeighError {
    match r {
        Err(ScaleError::Rejected(w)) => w,
        other => panic!("{other:?}"),
    }
}

#[test]
fn toledo_stable_weight() {
    let (_sim, mut reader) = setup(TOLEDO, Answer::stable(1250));
    assert_eq!(read(&mut reader, 2000).expect("weight"), QtyMilli(1250));
}

#[test]
fn toledo_motion_then_stable() {
    let (sim, mut reader) = setup(TOLEDO, Answer::stable(1250));
    sim.script([
        Answer::moving(1300),
        Answer::moving(1240),
        Answer::moving(1251),
    ]);
    assert_eq!(read(&mut reader, 3000).expect("weight"), QtyMilli(1250));
    assert_eq!(sim.requests(), 4);
}

#[test]
fn toledo_motion_until_the_deadline_is_a_motion_error() {
    let (_sim, mut reader) = setup(TOLEDO, Answer::moving(900));
    let err = read(&mut reader, 300).expect_err("never stable");
    assert_eq!(
        err.message(),
        "Peso inestable: la balanza está en movimiento; espere a que se detenga"
    );
    assert_eq!(rejected(Err(err)), WeighError::Motion);
}

#[test]
fn toledo_overload_and_under_zero() {
    let over = StatusFlags {
        over_capacity: true,
        ..StatusFlags::default()
    };
    let (_sim, mut reader) = setup(TOLEDO, Answer::Status(over));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::Overload);
    let (_sim, mut reader) = setup(TOLEDO, Answer::stable(-40));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::UnderZero);
    let (_sim, mut reader) = setup(TOLEDO, Answer::stable(0));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::NoWeight);
}

#[test]
fn toledo_garbage_and_truncated_frames_are_skipped() {
    let (sim, mut reader) = setup(TOLEDO, Answer::stable(2205));
    sim.script([
        Answer::Raw(b"\xff\x00\x13noise".to_vec()), // no frame at all
        Answer::Raw(b"\x0201.2".to_vec()),          // cut short
        Answer::Raw(b"\x0201.2\x0201.250\r".to_vec()), // cut by a new frame, answered twice
        Answer::Raw(b"\x0201,250\r".to_vec()),      // not a number
    ]);
    assert_eq!(read(&mut reader, 3000).expect("weight"), QtyMilli(2205));
}

#[test]
fn toledo_only_garbage_is_a_garbled_error() {
    let (_sim, mut reader) = setup(TOLEDO, Answer::Raw(b"\x0201,250\r".to_vec()));
    match read(&mut reader, 300) {
        Err(e @ ScaleError::Garbled(FrameError::BadWeight(_))) => {
            assert_eq!(
                e.message(),
                "Datos ilegibles de la balanza (revise el cable y la configuración)"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn toledo_no_answer_is_a_timeout_within_the_deadline() {
    let (_sim, mut reader) = setup(TOLEDO, Answer::Silent);
    let started = Instant::now();
    let err = read(&mut reader, 500).expect_err("silent");
    assert!(
        matches!(err, ScaleError::NoAnswer { timeout_ms: 200 }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn toledo_cable_unplugged_is_a_disconnection_not_a_timeout() {
    let (sim, mut reader) = setup(TOLEDO, Answer::stable(500));
    assert_eq!(read(&mut reader, 2000).expect("weight"), QtyMilli(500));
    sim.unplug();
    let started = Instant::now();
    let err = read(&mut reader, 5000).expect_err("unplugged");
    assert!(matches!(err, ScaleError::Disconnected(_)), "{err:?}");
    assert_eq!(err.message(), "Balanza desconectada");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn cas_stable_weight_with_handshake() {
    let (sim, mut reader) = setup(CAS, Answer::stable(455));
    assert_eq!(read(&mut reader, 2000).expect("weight"), QtyMilli(455));
    assert_eq!(sim.requests(), 1);
}

#[test]
fn cas_motion_then_stable() {
    let (sim, mut reader) = setup(CAS, Answer::stable(3210));
    sim.script([Answer::moving(3000), Answer::moving(3250)]);
    assert_eq!(read(&mut reader, 3000).expect("weight"), QtyMilli(3210));
    assert_eq!(sim.requests(), 3);
}

#[test]
fn cas_bad_checksum_and_garbage_then_good_frame() {
    let mut corrupted = cas::encode(QtyMilli(1250), true, *b"kg");
    corrupted[5] = b'9'; // 01.250 → 01.950, checksum no longer matches
    let (sim, mut reader) = setup(CAS, Answer::stable(1250));
    sim.script([
        Answer::Raw(corrupted.clone()),
        Answer::Raw(b"\x01\x02S 01".to_vec()), // truncated
        Answer::Raw(vec![0xAA; 40]),
    ]);
    assert_eq!(read(&mut reader, 3000).expect("weight"), QtyMilli(1250));
    // Only corrupted frames: the error says so.
    let (_sim, mut reader) = setup(CAS, Answer::Raw(corrupted));
    assert!(matches!(
        read(&mut reader, 300),
        Err(ScaleError::Garbled(FrameError::BadChecksum { .. }))
    ));
}

#[test]
fn cas_overload_under_zero_and_pounds() {
    // 16 kg on a 15 kg scale.
    let (_sim, mut reader) = setup(CAS, Answer::stable(16_000));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::Overload);
    let (_sim, mut reader) = setup(CAS, Answer::stable(-15));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::UnderZero);
    let (_sim, mut reader) = setup(CAS, Answer::Raw(cas::encode(QtyMilli(1000), true, *b"lb")));
    let started = Instant::now();
    let err = read(&mut reader, 2000).expect_err("pounds");
    assert!(
        matches!(err, ScaleError::Unit(ref u) if u == "lb"),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a wrong unit ends the wait at once"
    );
}

#[test]
fn cas_no_answer_and_unplug() {
    let (_sim, mut reader) = setup(CAS, Answer::Silent);
    assert!(matches!(
        read(&mut reader, 400),
        Err(ScaleError::NoAnswer { .. })
    ));
    let (sim, mut reader) = setup(CAS, Answer::stable(100));
    sim.unplug();
    assert!(matches!(
        read(&mut reader, 2000),
        Err(ScaleError::Disconnected(_))
    ));
}

#[test]
fn a_missing_port_is_an_open_error() {
    let err = ScaleReader::open("/dev/no-such-scale", None, config(TOLEDO)).expect_err("missing");
    assert!(matches!(err, ScaleError::Open { .. }), "{err:?}");
    assert_eq!(err.message(), "No se puede abrir el puerto de la balanza");
}

/// A CAS PD-II frame as its manual lays it out (section 3.1.6, TYPE-6
/// interface), built here by hand: `SOH STX STA SIGN W5…W0 UN1 UN0 BCC ETX EOT`.
fn pd2_frame(sta: u8, sign: u8, weight: &[u8; 6], unit: &[u8; 2]) -> Vec<u8> {
    let mut data = vec![sta, sign];
    data.extend_from_slice(weight);
    data.extend_from_slice(unit);
    let bcc = data.iter().fold(0u8, |a, b| a ^ b);
    let mut out = vec![0x01, 0x02];
    out.extend_from_slice(&data);
    out.extend_from_slice(&[bcc, 0x03, 0x04]);
    out
}

#[test]
fn cas_over_load_as_the_manual_sends_it_is_an_overload_not_garbage() {
    // Over load: SIGN `F` and every weight digit `F`.
    let (_sim, mut reader) = setup(CAS, Answer::Raw(pd2_frame(b'S', b'F', b"FFFFFF", b"Kg")));
    assert_eq!(rejected(read(&mut reader, 300)), WeighError::Overload);
    // The manual spells the unit `Kg`: sold at its weight.
    let (_sim, mut reader) = setup(CAS, Answer::Raw(pd2_frame(b'S', b' ', b"00.455", b"Kg")));
    assert_eq!(read(&mut reader, 2000).expect("weight"), QtyMilli(455));
}
