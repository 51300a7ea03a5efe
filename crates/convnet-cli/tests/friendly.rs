//! The `convnet` command when something goes wrong: an interrupted run on a data directory
//! resumes as printed, a finished run's Ctrl-C checkpoint goes away, charts go where `--out`
//! says, download failures say which files to supply, and a final save that fails keeps the model.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn convnet() -> Command {
    // An empty home and cache: MNIST comes from the shipped sample unless --data-dir says otherwise.
    let home = std::env::temp_dir().join("convnet-cli-test-empty-home");
    let mut c = Command::new(env!("CARGO_BIN_EXE_convnet"));
    c.env("HOME", &home).env("CONVNET_CACHE_DIR", &home).env_remove("CONVNET_DATA_DIR").env_remove("XDG_CACHE_HOME");
    c.stdin(Stdio::null());
    c
}

/// Writes MNIST's four files (uncompressed IDX, under their published names) into `dir`: the
/// first `train` digits of the shipped sample for training, the next `test` for testing.
fn write_mnist(dir: &Path, train: usize, test: usize) {
    let (set, _) = convnet::data::mnist_sample().unwrap();
    let px = 28 * 28;
    let write = |name: &str, images: &[u8], labels: &[u8]| {
        let n = labels.len() as u32;
        let mut img = vec![0, 0, 8, 3];
        for d in [n, 28, 28] {
            img.extend(d.to_be_bytes());
        }
        img.extend(images);
        let mut lab = vec![0, 0, 8, 1];
        lab.extend(n.to_be_bytes());
        lab.extend(labels);
        std::fs::write(dir.join(format!("{name}-images-idx3-ubyte")), img).unwrap();
        std::fs::write(dir.join(format!("{name}-labels-idx1-ubyte")), lab).unwrap();
    };
    std::fs::create_dir_all(dir).unwrap();
    write("train", &set.images[..train * px], &set.labels[..train]);
    write("t10k", &set.images[train * px..(train + test) * px], &set.labels[train..train + test]);
}

/// Ctrl-C in a run on `--data-dir`: the printed resume command reads the same directory and
/// finishes the run; the Ctrl-C checkpoint is then removed, and resuming it again says the run
/// is finished. A `--data-dir` given to the resume wins over the checkpoint's.
#[test]
fn an_interrupted_run_on_a_data_dir_resumes_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("my-mnist");
    write_mnist(&data, 700, 100);
    let mut child = convnet()
        .args(["train", "mnist-cnn", "--no-download", "--epochs", "3", "--batch-size", "32", "--verbose", "2"])
        .arg("--data-dir")
        .arg(&data)
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
    let ckpt = dir.path().join("convnet-train.ckpt");
    assert!(ckpt.exists(), "{err}");
    let hint = err.lines().find_map(|l| l.strip_prefix("Resume with: ")).expect("a resume hint").to_string();
    let words: Vec<&str> = hint.split_whitespace().collect();
    assert_eq!(words[0], env!("CARGO_BIN_EXE_convnet"));

    // A --data-dir on the resume command line wins: here it names a directory without the data.
    let copy = dir.path().join("copy.ckpt");
    std::fs::copy(&ckpt, &copy).unwrap();
    let out = convnet()
        .args(["train", "--resume"])
        .arg(&copy)
        .args(["--data-dir", "elsewhere"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("note: reading the data from ") && err.contains("elsewhere (the checkpoint's run read"),
        "{err}"
    );
    assert!(err.contains("elsewhere does not hold the dataset's files"), "{err}");

    // The printed command, pasted back as is.
    let out = Command::new(words[0])
        .args(&words[1..])
        .env("HOME", std::env::temp_dir().join("convnet-cli-test-empty-home"))
        .env("CONVNET_CACHE_DIR", std::env::temp_dir().join("convnet-cli-test-empty-home"))
        .env_remove("CONVNET_DATA_DIR")
        .arg("--verbose")
        .arg("0")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Dataset: mnist (700 train / 100 test images"), "{err}");
    assert!(!ckpt.exists(), "the finished run's Ctrl-C checkpoint is removed: {err}");
    assert!(err.contains("Removed the checkpoint convnet-train.ckpt (its run is finished)"), "{err}");

    let out = Command::new(words[0]).args(&words[1..]).current_dir(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: --resume convnet-train.ckpt: no such checkpoint") && err.contains("finished"),
        "{err}"
    );
}

/// `plot --out chart.svg` writes that one file, an SVG with both charts; `.png` a PNG; a
/// directory still gets the four files.
#[test]
fn plot_writes_the_file_out_names_in_its_format() {
    let dir = tempfile::tempdir().unwrap();
    let hist = dir.path().join("history.csv");
    std::fs::write(&hist, "epoch,accuracy,loss,val_accuracy,val_loss\n0,0.5,1.2,0.55,1.1\n1,0.7,0.8,0.68,0.9\n")
        .unwrap();
    let svg = dir.path().join("chart.svg");
    let out = convnet().arg("plot").arg(&hist).arg("--out").arg(&svg).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(svg.is_file(), "a file, not a folder");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("Model Accuracy") && text.contains("Model Loss"));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), svg.display().to_string());
    let png = dir.path().join("chart.png");
    assert!(convnet().arg("plot").arg(&hist).arg("--out").arg(&png).status().unwrap().success());
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    let charts = dir.path().join("charts");
    assert!(convnet().arg("plot").arg(&hist).arg("--out").arg(&charts).status().unwrap().success());
    for f in ["accuracy.png", "accuracy.svg", "loss.png", "loss.svg"] {
        assert!(charts.join(f).is_file(), "{f}");
    }
    let out = convnet().arg("plot").arg(&hist).arg("--out").arg(dir.path().join("chart.jpg")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("charts are drawn as .png or .svg"), "{err}");
}

/// A data set that is not here and may not be downloaded: one line naming the files to put in
/// a directory for --data-dir. MNIST falls back to its shipped sample and says the same in its note.
#[test]
fn a_missing_data_set_says_which_files_to_supply() {
    let out = convnet().args(["evaluate", "cifar10-cnn", "--dataset", "cifar10", "--no-download"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.lines().filter(|l| !l.starts_with("note: cifar10-cnn is untrained")).collect::<Vec<_>>().join("\n");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: cifar10 is not on this machine"), "{err}");
    assert!(err.contains("put cifar-10-binary.tar.gz (or its extracted cifar-10-batches-bin/) in a directory and pass --data-dir DIR"), "{err}");
    let out = convnet().args(["evaluate", "lenet5", "--no-download", "--limit", "8"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "put train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, \
             t10k-labels-idx1-ubyte.gz in a directory and pass --data-dir DIR"
        ),
        "{err}"
    );
}

/// `predict --json` says per picture whether `--invert auto` inverted it.
#[test]
fn predict_json_says_which_pictures_were_inverted() {
    let dir = tempfile::tempdir().unwrap();
    let digit = |background: u8, ink: u8| {
        image::GrayImage::from_fn(28, 28, |x, y| {
            image::Luma([if (9..19).contains(&x) && (4..24).contains(&y) { ink } else { background }])
        })
    };
    let (light, dark) = (dir.path().join("light.png"), dir.path().join("dark.png"));
    digit(250, 10).save(&light).unwrap();
    digit(0, 255).save(&dark).unwrap();
    let out = convnet().args(["predict", "lenet5", "--json"]).arg(&light).arg(&dark).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["inverted"], serde_json::json!(true), "{v}");
    assert_eq!(v["results"][1]["inverted"], serde_json::json!(false), "{v}");
    let out = convnet().args(["predict", "lenet5", "--json", "--invert", "no"]).arg(&light).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["results"][0]["inverted"], serde_json::json!(false), "{v}");
}

/// A final `--save` that fails after training still keeps the model: written to a fallback
/// path, which the error names. The save directory passes the start-of-run check, then is
/// replaced by a plain file while the run trains (so the save fails even for root).
#[test]
fn a_failed_final_save_keeps_the_model_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("models");
    let target = out_dir.join("net.keras");
    let mut child = convnet()
        .args(["train", "lenet5", "--no-download", "--limit", "640", "--epochs", "6", "--batch-size", "32"])
        .args(["--verbose", "2", "--save"])
        .arg(&target)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 && !line.starts_with("Epoch 1/6") {
        line.clear();
    }
    assert!(line.starts_with("Epoch 1/6"), "training did not start");
    std::fs::remove_dir_all(&out_dir).unwrap();
    std::fs::write(&out_dir, b"not a directory any more").unwrap();
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or("");
    assert!(last.starts_with(&format!("error: --save {}: ", target.display())), "{err}");
    let kept =
        last.split("the trained model was saved to ").nth(1).expect("a fallback path").trim_end_matches(" instead");
    let kept = dir.path().join(kept);
    assert!(kept.file_name().unwrap().to_string_lossy().starts_with("net-rescued-"), "{}", kept.display());
    let model = convnet::io::load_model(&kept).expect("the rescued model loads");
    assert_eq!(model.layers().len(), convnet::open_model("lenet5").unwrap().model.layers().len());
}
