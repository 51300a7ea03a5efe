//! The `convnet` command as a user runs it: checkpoints, Ctrl-C and resuming, and one-line
//! errors on bad input.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn convnet() -> Command {
    // An empty home and cache: MNIST comes from the shipped sample, whatever this machine holds.
    let home = std::env::temp_dir().join("convnet-cli-test-empty-home");
    let mut c = Command::new(env!("CARGO_BIN_EXE_convnet"));
    c.env("HOME", &home).env("CONVNET_CACHE_DIR", &home).env_remove("CONVNET_DATA_DIR").env_remove("XDG_CACHE_HOME");
    c.stdin(Stdio::null());
    c
}

fn weights(p: &Path) -> Vec<convnet::Tensor> {
    convnet::io::load_model(p).unwrap().get_weights()
}

const TRAIN: &[&str] =
    &["train", "mnist-cnn", "--no-download", "--limit", "640", "--epochs", "3", "--batch-size", "32", "--verbose", "2"];

/// Ctrl-C in the middle of epoch 2 writes a checkpoint and says how to resume; resuming gives
/// the weights of a run that was never interrupted, bit for bit.
#[test]
fn ctrl_c_then_resume_matches_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let straight = dir.path().join("straight.safetensors");
    let out = convnet().args(TRAIN).arg("--save").arg(&straight).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let resumed = dir.path().join("resumed.safetensors");
    let mut child = convnet()
        .args(TRAIN)
        .arg("--save")
        .arg(&resumed)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    for line in stdout.lines() {
        if line.unwrap().starts_with("Epoch 2/3") {
            break;
        }
    }
    Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    let ckpt = dir.path().join("resumed.ckpt");
    // The hint names the program as it was started, so it can be pasted back.
    assert!(err.contains(&format!("Resume with: {} train --resume", env!("CARGO_BIN_EXE_convnet"))), "{err}");
    assert!(ckpt.exists(), "{err}");
    assert!(!resumed.exists(), "the interrupted run saved no final model");

    let out = convnet().arg("train").arg("--resume").arg(&ckpt).arg("--verbose").arg("0").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(weights(&resumed), weights(&straight));
}

/// `--checkpoint` writes after every epoch; resuming with a larger `--epochs` continues the run.
#[test]
fn epoch_checkpoints_extend_a_finished_run() {
    let dir = tempfile::tempdir().unwrap();
    let three = dir.path().join("three.safetensors");
    let ckpt = dir.path().join("run.ckpt");
    let lenet = ["train", "lenet5", "--no-download", "--limit", "400", "--verbose", "0"];
    assert!(convnet().args(lenet).args(["--epochs", "3", "--save"]).arg(&three).output().unwrap().status.success());
    assert!(convnet()
        .args(lenet)
        .args(["--epochs", "2", "--checkpoint"])
        .arg(&ckpt)
        .output()
        .unwrap()
        .status
        .success());
    let out = convnet().arg("train").arg("--resume").arg(&ckpt).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already trained 2 of 2 epochs"));
    let extended = dir.path().join("extended.safetensors");
    let out = convnet()
        .arg("train")
        .arg("--resume")
        .arg(&ckpt)
        .args(["--epochs", "3", "--save"])
        .arg(&extended)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(weights(&extended), weights(&three));
}

/// Bad input gives one line starting with `error:` and a failing status, never a panic.
#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.h5");
    std::fs::write(&junk, b"\x89HDF\r\n\x1a\nthis is not really hdf5").unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["evaluate".into(), junk.display().to_string()],
        vec!["train".into(), "--resume".into(), junk.display().to_string()],
        vec!["train".into(), "nosuchmodel".into(), "--no-download".into()],
        vec!["summary".into(), dir.path().join("missing.keras").display().to_string()],
        vec!["train".into(), "lenet5".into(), "--no-download".into(), "--lr-schedule".into(), "cosine".into()],
    ];
    for args in cases {
        let out = convnet().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.starts_with("error: ") && err.trim_end().lines().count() == 1, "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// `kill -9` at many moments of a run that writes a checkpoint after every epoch: whatever
/// instant the process dies, the checkpoint on disk is whole and resumable.
#[test]
fn sigkill_never_leaves_a_broken_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("k.ckpt");
    let mut mid_write = 0;
    for i in 0..12u64 {
        let mut child = convnet()
            .args(["train", "lenet5", "--no-download", "--limit", "128", "--batch-size", "64", "--epochs", "1000"])
            .args(["--verbose", "0", "--checkpoint"])
            .arg(&ckpt)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it start (loading data takes a moment), then kill at a varying instant.
        std::thread::sleep(std::time::Duration::from_millis(700 + i * 37));
        child.kill().unwrap();
        child.wait().unwrap();
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains(".tmp-"))
            .count();
        mid_write += leftovers;
        if ckpt.exists() {
            let (_, state) =
                convnet::train::checkpoint::load_checkpoint(&ckpt).expect("the checkpoint loads after kill -9");
            assert!(state.epoch >= 1);
        }
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let e = e.unwrap();
            if e.file_name().to_string_lossy().contains(".tmp-") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    }
    assert!(ckpt.exists(), "no checkpoint was ever written");
    eprintln!("kill -9 landed during a checkpoint write {mid_write} times of 12");
}

/// Flag values out of range are refused while parsing, naming the flag, before any data is
/// loaded; a negative number reaches that check instead of clap's `-- -1` tip.
#[test]
fn bad_flag_values_are_refused_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--epochs", "0"], "--epochs"),
        (&["--batch-size", "0"], "--batch-size"),
        (&["--validation-split", "1.5"], "--validation-split"),
        (&["--validation-split=-0.5"], "--validation-split"),
        (&["--validation-split", "-0.5"], "--validation-split"),
        (&["--learning-rate", "-1"], "--learning-rate"),
        (&["--learning-rate", "0"], "--learning-rate"),
        (&["--learning-rate", "NaN"], "--learning-rate"),
        (&["--limit", "0"], "--limit"),
    ];
    for (flags, name) in cases {
        let out = convnet().args(["train", "lenet5", "--no-download"]).args(*flags).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        let first = err.lines().next().unwrap_or("");
        assert!(first.starts_with("error: invalid value") && first.contains(name), "{flags:?}: {err}");
        assert!(!err.contains("-- -1") && !err.contains("Dataset:"), "{flags:?}: {err}");
    }
    let out = convnet().args(["evaluate", "m.keras", "--batch-size", "0"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--batch-size"));
}

/// A misspelt key in a TOML model file is refused with the closest valid name, not ignored.
#[test]
fn toml_typos_are_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.toml");
    std::fs::write(
        &model,
        "input_shape = [28, 28, 1]\n[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 10\nactivaton = \"softmax\"\n",
    )
    .unwrap();
    let out = convnet().arg("train").arg(&model).args(["--no-download", "--epochs", "1"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown Dense key `activaton`: did you mean `activation`?"), "{err}");
    std::fs::write(&model, "input_shape = [28, 28, 1]\n[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 10\n[compile]\noptimzer = \"sgd\"\n").unwrap();
    let out = convnet().arg("summary").arg(&model).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("did you mean `optimizer`?"), "{err}");
}

/// Every output is checked before any work: an unwritable place fails at once, naming the
/// flag, and nothing is trained or evaluated.
#[test]
fn unwritable_outputs_fail_before_any_work() {
    // /proc takes no new files, even for root.
    for flag in ["--save", "--history", "--csv-log", "--checkpoint", "--save-best"] {
        let out = convnet()
            .args(["train", "lenet5", "--no-download", "--limit", "64", "--epochs", "1", "--verbose", "2", flag])
            .arg("/proc/convnet-out.keras")
            .output()
            .unwrap();
        let (err, stdout) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout));
        assert_eq!(out.status.code(), Some(1), "{flag}: {err}");
        assert!(err.starts_with(&format!("error: {flag} /proc/convnet-out.keras: cannot write in /proc")), "{err}");
        assert!(!stdout.contains("Epoch") && !err.contains("Dataset:"), "{flag}: {stdout}{err}");
    }
    let out = convnet().args(["evaluate", "lenet5", "--no-download", "--confusion", "/proc/c.png"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--confusion /proc/c.png: cannot write"), "{err}");
    assert!(!err.contains("Dataset:"), "{err}");
}

/// A run without `--save` says once, at the end, that its model was not kept and how to keep it.
#[test]
fn a_run_without_save_says_the_model_was_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = convnet()
        .args(["train", "lenet5", "--no-download", "--limit", "64", "--epochs", "1", "--verbose", "0"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("the trained model was not saved; add --save model.keras to keep it").count(), 1, "{err}");
}

/// A file cut short is called truncated or damaged, with what it was meant to be; a model file
/// given to `plot` is named as a model file, not a history.
#[test]
fn damaged_files_are_diagnosed_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let (m_h5, m_keras, ckpt) = (dir.path().join("m.h5"), dir.path().join("m.keras"), dir.path().join("c.ckpt"));
    let out = convnet()
        .args(["train", "lenet5", "--no-download", "--limit", "64", "--epochs", "1", "--verbose", "0", "--save"])
        .arg(&m_h5)
        .arg("--checkpoint")
        .arg(&ckpt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = convnet::io::load_model(&m_h5).unwrap();
    convnet::io::save_model(&model, &m_keras).unwrap();
    let cases: [(&Path, &[&str], &str); 3] = [
        (&m_h5, &["summary"], "this Keras HDF5 model (.h5) is truncated or damaged"),
        (&m_keras, &["evaluate"], "this Keras 3 archive (.keras) is truncated or damaged"),
        (&ckpt, &["train", "--resume"], "this convnet checkpoint is truncated or damaged"),
    ];
    for (file, cmd, want) in cases {
        let bytes = std::fs::read(file).unwrap();
        let half = dir.path().join(format!("half-{}", file.file_name().unwrap().to_string_lossy()));
        std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
        let out = convnet().args(cmd).arg(&half).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let out = convnet().arg("plot").arg(&m_h5).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("a model file, not a training history"), "{err}");
}

/// With progress shown, the callbacks print Keras' own lines.
#[test]
fn callbacks_speak_as_keras_does() {
    let dir = tempfile::tempdir().unwrap();
    let out = convnet()
        .args(["train", "lenet5", "--no-download", "--limit", "128", "--epochs", "3", "--verbose", "2"])
        .args(["--reduce-lr-on-plateau", "1:0.5", "--monitor", "accuracy", "--learning-rate", "1e-9", "--save-best"])
        .arg(dir.path().join("best.keras"))
        .arg("--early-stopping")
        .arg("1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Epoch 1: accuracy improved from None to "), "{text}");
    assert!(text.contains("Restoring model weights from the end of the best epoch: "), "{text}");
}

/// `augment` with no dataset shows MNIST, which works offline from the shipped sample.
#[test]
fn augment_defaults_to_mnist_and_works_offline() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("aug.png");
    let out = convnet().args(["augment", "--no-download", "--preview"]).arg(&png).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Dataset: mnist") && png.exists(), "{err}");
}

/// A model file keeps its own loss when `--optimizer` replaces its optimizer: a file compiled
/// with a from-logits loss trains with it, as Keras would, not with a default one.
#[test]
fn the_files_loss_survives_another_optimizer() {
    use convnet::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let mut m = Sequential::new();
    m.add(Flatten::new().input_shape([28, 28, 1]));
    m.add(Dense::new(10));
    m.compile(Loss::SparseCategoricalCrossentropy.with_from_logits(true), Adam::default(), &[Metric::Accuracy])
        .unwrap();
    m.build().unwrap();
    let file = dir.path().join("logits.keras");
    convnet::io::save_model(&m, &file).unwrap();
    let trained = dir.path().join("trained.keras");
    let args = ["--no-download", "--limit", "256", "--epochs", "1", "--optimizer", "sgd", "--verbose", "0"];
    let out = convnet().arg("train").arg(&file).args(args).arg("--save").arg(&trained).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let back = convnet::io::load_model(&trained).unwrap();
    let c = back.compiled().unwrap();
    assert_eq!(c.loss, Loss::SparseCategoricalCrossentropy.with_from_logits(true));
    assert_eq!(c.optimizer.class_name(), "SGD");
}
