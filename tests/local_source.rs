//! The shared Source conformance suite on the local directory source.

#[tokio::test]
async fn local_source_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    for (k, v) in conformance::fixture() {
        let p = root.join(&k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, v).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("root-sibling")).unwrap();
    std::fs::write(dir.path().join("root-sibling/x.txt"), b"outside").unwrap();
    let source = r2migrate::source::local::LocalSource::new(root);
    conformance::check(&source).await;
}

mod conformance {
    include!("conformance/suite.rs");
}
