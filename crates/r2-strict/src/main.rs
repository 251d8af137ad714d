//! `r2-strict --port P --access-key K --secret-key S [--bucket B]... [--requests-to FILE]`:
//! the strict R2 test server on 127.0.0.1, for benchmarks and trying things by hand (the
//! tests start it in process through the library). With `--requests-to`, the requests
//! answered so far, by kind, are written to FILE as JSON every 100 ms (what benchmarks
//! count per object).

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let (mut key, mut secret) = (String::from("r2-strict"), String::from("r2-strict-secret"));
    let mut buckets = Vec::new();
    let mut requests_to: Option<std::path::PathBuf> = None;
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port takes a number"),
            "--access-key" => key = value,
            "--secret-key" => secret = value,
            "--bucket" => buckets.push(value),
            "--requests-to" => requests_to = Some(value.into()),
            other => {
                eprintln!("unknown flag {other}: use --port, --access-key, --secret-key, --bucket, --requests-to");
                std::process::exit(2);
            }
        }
    }
    let server = r2_strict::Server::start_on(port, &key, &secret);
    for b in &buckets {
        server.create_bucket(b);
    }
    println!("r2-strict listening on {}", server.endpoint());
    let mut written = String::new();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let Some(path) = &requests_to else { continue };
        let counts: Vec<String> = server
            .requests()
            .iter()
            .map(|(k, n)| format!("\"{k}\": {n}"))
            .collect();
        let text = format!("{{{}}}\n", counts.join(", "));
        if text != written {
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, &text).is_ok() && std::fs::rename(&tmp, path).is_ok() {
                written = text;
            }
        }
    }
}
