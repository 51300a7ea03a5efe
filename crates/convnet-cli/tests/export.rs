//! `convnet export`: an ONNX file from a preset or a saved model, and one clear line (and no
//! file) when the output cannot be written or a layer has no ONNX form.

use std::process::{Command, Output, Stdio};

fn convnet(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_convnet")).args(args).stdin(Stdio::null()).output().unwrap()
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

#[test]
fn exports_a_preset_and_refuses_an_unwritable_path() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("lenet5.onnx");
    let out = convnet(&["export".as_ref(), "lenet5".as_ref(), p.as_os_str()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("opset 17"));
    let bytes = std::fs::read(&p).unwrap();
    let model = <convnet::io::onnx::proto::ModelProto as prost::Message>::decode(bytes.as_slice()).unwrap();
    assert_eq!(model.graph.unwrap().input[0].name(), "input_layer");

    let missing = dir.path().join("no such folder").join("m.onnx");
    let err = one_error_line(&convnet(&["export".as_ref(), "lenet5".as_ref(), missing.as_os_str()]));
    assert!(err.contains("no such folder"), "{err}");
    assert!(!missing.parent().unwrap().exists());
}

#[test]
fn a_layer_without_onnx_form_is_named_and_nothing_is_written() {
    use convnet::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let mut m = Sequential::new();
    m.add(Dense::new(4).input_shape([3]));
    m.add(ActivationLayer::new(Activation::Sparsemax).name("sparse_out"));
    m.build().unwrap();
    let saved = dir.path().join("m.keras");
    convnet::io::save_model(&m, &saved).unwrap();
    let p = dir.path().join("m.onnx");
    let err = one_error_line(&convnet(&["export".as_ref(), saved.as_os_str(), p.as_os_str()]));
    assert!(err.contains("\"sparse_out\"") && err.contains("sparsemax"), "{err}");
    assert!(!p.exists());
}
