//! `r2-strict --port P --access-key K --secret-key S [--bucket B]...`: the strict R2 test
//! server on 127.0.0.1, for benchmarks and trying things by hand (the tests start it in
//! process through the library).

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let (mut key, mut secret) = (String::from("r2-strict"), String::from("r2-strict-secret"));
    let mut buckets = Vec::new();
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--port" => port = value.parse().expect("--port takes a number"),
            "--access-key" => key = value,
            "--secret-key" => secret = value,
            "--bucket" => buckets.push(value),
            other => {
                eprintln!("unknown flag {other}: use --port, --access-key, --secret-key, --bucket");
                std::process::exit(2);
            }
        }
    }
    let server = r2_strict::Server::start_on(port, &key, &secret);
    for b in &buckets {
        server.create_bucket(b);
    }
    println!("r2-strict listening on {}", server.endpoint());
    loop {
        std::thread::park();
    }
}
