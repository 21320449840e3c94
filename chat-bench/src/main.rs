//! `chat-bench`: see `chat-bench --help`.

use std::io::Write;
use std::process::ExitCode;

use chat_bench::report::{human, human_idle};
use chat_bench::{BenchError, Opts};
use clap::Parser;

/// The server half of the bench, run as a child process (`serve-child`).
#[derive(Parser, Debug)]
struct ChildCli {
    #[command(flatten)]
    serve: chat_server::cli::ServeArgs,
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    let program = args.next();
    let rest: Vec<_> = args.collect();
    if rest.first().is_some_and(|a| a == "serve-child") {
        return serve_child(program, rest[1..].to_vec());
    }
    let mut opts = Opts::parse();
    if let Some(soak) = opts.soak {
        opts.duration = soak;
    }
    init_logs("chat_bench=info");
    // The bench hosts many clients that would each have a process of their own; the SDK's
    // store commits run on the runtime's threads, so more threads than cores keep one
    // client's disk work from stalling the others (at 2,000 msg/s, medians of 3 runs gave
    // p99 12, 11 and 9 ms with 1, 2 and 4 threads per core).
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) * 4;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-bench: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&opts)) {
        Ok(clean) => ExitCode::from(if clean { 0 } else { 1 }),
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn init_logs(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Runs the benchmark and prints the report; true when nothing was lost.
async fn run(opts: &Opts) -> Result<bool, BenchError> {
    if let Some(connections) = opts.idle_connections {
        let idle = chat_bench::idle::run(opts, connections).await?;
        print!("{}", human_idle(&idle));
        write_json(opts, &idle)?;
        return Ok(true);
    }
    if opts.sweep {
        let quiet = opts.quiet;
        if !quiet {
            eprintln!("{}", chat_bench::sweep::step_header());
        }
        let report = chat_bench::sweep::run(opts, |kind, step| {
            if !quiet {
                eprintln!("{}", chat_bench::sweep::step_line(kind, step));
            }
        })
        .await?;
        print!("{}", chat_bench::sweep::human(&report));
        write_json(opts, &report)?;
        if let Some(path) = &opts.plot {
            std::fs::write(path, chat_bench::plot::sweep_svg(&report))?;
        }
        return Ok(report.clean());
    }
    if let Some(rooms) = opts.rooms_per_client {
        let report = chat_bench::many_rooms::run(opts, rooms).await?;
        print!("{}", chat_bench::many_rooms::human(&report));
        write_json(opts, &report)?;
        return Ok(report.clean());
    }
    let report = chat_bench::run(opts).await?;
    print!("{}", human(&report));
    let _ = std::io::stdout().flush();
    write_json(opts, &report)?;
    if let Some(path) = &opts.plot {
        std::fs::write(path, chat_bench::plot::svg(&report))?;
    }
    Ok(report.primary.clean())
}

/// Writes `report` as JSON where `--json` says, if it does.
fn write_json(opts: &Opts, report: &impl serde::Serialize) -> Result<(), BenchError> {
    let Some(path) = &opts.json else {
        return Ok(());
    };
    let json =
        serde_json::to_string_pretty(report).map_err(|e| BenchError::Usage(e.to_string()))?;
    write_output(path, &json)
}

fn write_output(path: &std::path::Path, text: &str) -> Result<(), BenchError> {
    if path.as_os_str() == "-" {
        println!("{text}");
        Ok(())
    } else {
        Ok(std::fs::write(path, format!("{text}\n"))?)
    }
}

fn serve_child(program: Option<std::ffi::OsString>, rest: Vec<std::ffi::OsString>) -> ExitCode {
    let cli = ChildCli::parse_from(program.into_iter().chain(rest));
    init_logs("chat_server=warn");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-bench serve-child: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(chat_bench::child::serve_child(cli.serve)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chat-bench serve-child: {e}");
            ExitCode::from(2)
        }
    }
}
