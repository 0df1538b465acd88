//! The `hcr` command: parses arguments, calls the library, prints the error chain.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hcr_driver::build::{BuildOptions, Sdk, build};

#[derive(Parser)]
#[command(name = "hcr", version, about = "Hot-reload C programs on macOS/arm64 while they run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print how long each stage took (compile, parse, resolve, prepare, plan, relocate, publish, ...), from the
    /// tracing spans every pass opens.
    #[arg(long, global = true)]
    time: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Compile and link, incrementally when the state beside OUT exists.
    Build(BuildArgs),
    /// Build, launch, and keep the running program up to date (REPL, --watch, --listen).
    Run(RunArgs),
    /// The image's map: segments, atoms, stubs and cells; with --diff, before and after.
    Layout(LayoutArgs),
    /// Check an executable as the kernel would before running it: its Mach-O structure reads back, and its code
    /// signature's hashes match every page and blob. Exits 1 naming the first problem.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    /// The executable.
    exe: PathBuf,
}

#[derive(Args)]
struct LayoutArgs {
    /// The executable.
    exe: PathBuf,
    /// Show only this symbol (with its stub and cells).
    symbol: Option<String>,
    /// The executable before an update (`OUT.hcr/previous` holds the one before the last update).
    #[arg(long, value_name = "OLD")]
    diff: Option<PathBuf>,
    /// Also write the before/after view as a self-contained HTML page.
    #[arg(long, value_name = "FILE", requires = "diff")]
    html: Option<PathBuf>,
    /// With --diff, list unchanged symbols too.
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct RunArgs {
    /// The executable to write.
    #[arg(short, long, default_value = "a.out")]
    output: PathBuf,
    #[command(flatten)]
    compiler: CompilerArgs,
    /// Where the program runs: `mach` (macOS) or `sim` (darwin-sim, Linux builds with the `sim` feature).
    #[arg(long, default_value = if cfg!(target_os = "macos") { "mach" } else { "sim" })]
    backend: String,
    /// Launch without ASLR (at the link address).
    #[arg(long)]
    no_aslr: bool,
    /// Hot-update when a source or header changes.
    #[arg(long)]
    watch: bool,
    /// Serve the control protocol (docs/protocol.md) on `unix:PATH`.
    #[arg(long, value_name = "unix:PATH")]
    listen: Option<String>,
    /// Print the full report after each update.
    #[arg(short, long)]
    verbose: bool,
    /// C sources and arm64 objects, then `--` and the program's arguments.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args)]
struct BuildArgs {
    /// The executable to write.
    #[arg(short, long, default_value = "a.out")]
    output: PathBuf,
    #[command(flatten)]
    compiler: CompilerArgs,
    /// C sources and arm64 objects.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Print every changed atom and write, not just the summary.
    #[arg(short, long)]
    verbose: bool,
}

/// Flags passed through to the compiler.
#[derive(Args)]
struct CompilerArgs {
    /// Add a header search path.
    #[arg(short = 'I', value_name = "DIR")]
    include: Vec<PathBuf>,
    /// Define a macro (`NAME` or `NAME=VALUE`).
    #[arg(short = 'D', value_name = "MACRO")]
    define: Vec<String>,
    /// Optimisation level (`-O0` … `-O3`, `-Os`).
    #[arg(short = 'O', value_name = "LEVEL")]
    opt: Option<String>,
    /// The C compiler (default: clang-19 on Linux, clang on macOS).
    #[arg(long, value_name = "PATH")]
    cc: Option<PathBuf>,
    /// The SDK folder (default: $HCR_SDK, else `xcrun --show-sdk-path` on macOS, else the sim SDK).
    #[arg(long, value_name = "DIR")]
    sdk: Option<PathBuf>,
}

impl CompilerArgs {
    fn flags(&self) -> Vec<OsString> {
        let mut flags: Vec<OsString> = Vec::new();
        for dir in &self.include {
            let mut flag = OsString::from("-I");
            flag.push(dir);
            flags.push(flag);
        }
        flags.extend(self.define.iter().map(|d| OsString::from(format!("-D{d}"))));
        flags.push(OsString::from(format!("-O{}", self.opt.as_deref().unwrap_or("0"))));
        flags.push("-g".into());
        flags
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.time {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .with_target(false)
            // No timestamps; `without_time()` would also drop the span durations this flag is for.
            .with_timer(())
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_max_level(tracing::Level::INFO)
            .init();
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("hcr: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run_session(args),
        Command::Layout(args) => layout(&args),
        Command::Verify(args) => verify(&args),
        Command::Build(args) => {
            let options = BuildOptions {
                out: args.output.clone(),
                inputs: args.inputs,
                flags: args.compiler.flags(),
                sdk: Sdk::locate(args.compiler.sdk.as_deref())?,
                cc: args.compiler.cc,
            };
            let built = build(&options)?;
            let patch = &built.patch;
            println!(
                "hcr: {} ({} compiled, {} link): {} atoms added, {} changed in place, {} moved, {} removed; {} bytes in {} file ranges",
                args.output.display(),
                built.compiled.len(),
                if built.incremental { "incremental" } else { "full" },
                patch.summary.added.len(),
                patch.summary.changed_in_place.len(),
                patch.summary.moved.len(),
                patch.summary.removed.len(),
                patch.file_dirty.iter().map(|r| r.end - r.start).sum::<u64>(),
                patch.file_dirty.len(),
            );
            if args.verbose {
                print!("{}", patch.describe());
            }
            Ok(())
        }
    }
}

fn run_session(args: RunArgs) -> anyhow::Result<()> {
    match args.backend.as_str() {
        #[cfg(feature = "sim")]
        "sim" => serve_with(args, hcr_driver::session::sim::SimLauncher),
        #[cfg(not(feature = "sim"))]
        "sim" => {
            anyhow::bail!("this hcr was built without the simulator (build hcr-driver with --features sim)")
        }
        #[cfg(target_os = "macos")]
        "mach" => serve_with(args, hcr_driver::session::mach::MachLauncher),
        #[cfg(not(target_os = "macos"))]
        "mach" => anyhow::bail!("the mach backend needs macOS; use --backend sim"),
        other => anyhow::bail!("unknown backend {other}: use mach or sim"),
    }
}

/// Builds, launches with `launcher`, and serves commands until `exit`.
#[cfg_attr(
    not(any(feature = "sim", target_os = "macos")),
    expect(dead_code, reason = "no backend is compiled in on Linux without the sim feature")
)]
fn serve_with<L: hcr_driver::session::Launcher>(args: RunArgs, launcher: L) -> anyhow::Result<()> {
    let options = BuildOptions {
        out: args.output.clone(),
        inputs: args.inputs.clone(),
        flags: args.compiler.flags(),
        sdk: Sdk::locate(args.compiler.sdk.as_deref())?,
        cc: args.compiler.cc.clone(),
    };
    let listen = match &args.listen {
        None => None,
        Some(spec) => Some(PathBuf::from(
            spec.strip_prefix("unix:")
                .ok_or_else(|| anyhow::anyhow!("--listen takes unix:PATH, not {spec}"))?,
        )),
    };
    let serve_options = hcr_driver::serve::ServeOptions { listen, watch: args.watch, verbose: args.verbose };
    let project = hcr_driver::build::Project::open(options)?;
    let mut session = hcr_driver::session::Session::new(project, launcher, args.args.clone(), !args.no_aslr);
    let report = session.update()?;
    eprintln!("hcr: built {}: {}", args.output.display(), report.one_line());
    session.run()?;
    hcr_driver::serve::serve(&mut session, &serve_options)
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let path = args.exe.display();
    let file = std::fs::read(&args.exe).with_context(|| format!("reading {path}"))?;
    let map = macho_layout::read::read_map(&file)
        .with_context(|| format!("{path}: the image does not read back"))?;
    let signed =
        macho_layout::codesign::check(&file).with_context(|| format!("{path}: the code signature"))?;
    println!(
        "{path}: {} segments, {} symbols; signature of {:?} valid over {:#x} bytes ({} pages){}",
        map.segments.len(),
        map.symbols.len(),
        signed.ident,
        signed.code_limit,
        signed.pages,
        if signed.entitlements { ", with entitlements" } else { "" }
    );
    Ok(())
}

fn layout(args: &LayoutArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use hcr_driver::layout_view;
    let read = |path: &std::path::Path| -> anyhow::Result<(Vec<u8>, macho_layout::read::Map)> {
        let file = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let map = macho_layout::read::read_map(&file).with_context(|| path.display().to_string())?;
        Ok((file, map))
    };
    let (file, map) = read(&args.exe)?;
    let Some(old_path) = &args.diff else {
        print!("{}", layout_view::text(&map, args.symbol.as_deref()));
        return Ok(());
    };
    let (old_file, old_map) = read(old_path)?;
    let rows = layout_view::diff(
        layout_view::Image { map: &old_map, file: &old_file },
        layout_view::Image { map: &map, file: &file },
    );
    print!("{}", layout_view::diff_text(&rows, args.all));
    if let Some(html) = &args.html {
        let title = format!("{} → {}", old_path.display(), args.exe.display());
        std::fs::write(html, layout_view::diff_html(&title, &rows))
            .with_context(|| format!("writing {}", html.display()))?;
    }
    Ok(())
}
