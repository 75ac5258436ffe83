//! Running an exec or an attach over [`Channels`], whatever the transport.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use corten_runtime::container::{stop_exec, ContainerRuntime, ExecRequest};
use corten_runtime::shim::protocol::frame;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::mpsc;

use super::channels::{client_gone, status_json, take_sizes, Channels, Sink};
use super::tokens::{AttachTarget, ExecTarget, Pending};

/// How long output may keep flowing after the process has exited (a
/// background child of the command may hold the pipes).
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// Last activity, for the idle timeout.
#[derive(Debug, Clone)]
pub struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

async fn pump_out<R: AsyncRead + Unpin>(mut from: R, to: Option<Sink>, activity: Activity) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                activity.touch();
                if let Some(sink) = &to {
                    // A client that stopped reading: keep draining so the
                    // process never blocks on a full pipe.
                    let _ = sink.write(buf[..n].to_vec()).await;
                }
            }
        }
    }
}

/// Runs an exec or attach request over `ch` (a port-forward request has
/// no place here and is dropped).
pub async fn run(
    runtime: &ContainerRuntime,
    pending: Pending,
    ch: Channels,
    idle: Duration,
    plain_errors: bool,
) {
    match pending {
        Pending::Exec(target) => exec(runtime, target, ch, idle, plain_errors).await,
        Pending::Attach(target) => attach(runtime, target, ch, idle, plain_errors).await,
        Pending::PortForward(_) => {}
    }
}

/// Runs `target` in its container; the exit status goes to the error
/// channel as the v4 status JSON (or as plain text for `v1`-`v3` when
/// `plain_errors`).
pub async fn exec(
    runtime: &ContainerRuntime,
    target: ExecTarget,
    mut ch: Channels,
    idle: Duration,
    plain_errors: bool,
) {
    let activity = Activity::new();
    let fifo = if target.tty {
        let path = runtime.bundle(&target.container_id).join(format!(
            "resize-{}-{}",
            std::process::id(),
            FIFO_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        match corten_runtime::blocking::run(|| corten_runtime::linux::open_resize_fifo(&path)) {
            Ok(file) => Some((path, file)),
            Err(e) => {
                tracing::warn!(container = %target.container_id, error = %e, "no resize channel for this exec");
                None
            }
        }
    } else {
        None
    };
    let req = ExecRequest {
        args: target.cmd.clone(),
        tty: target.tty,
        resize_fifo: fifo.as_ref().map(|(p, _)| p.clone()),
        ..ExecRequest::default()
    };
    let result = run_exec(
        runtime,
        &target,
        &req,
        &mut ch,
        &activity,
        idle,
        fifo.as_ref(),
    )
    .await;
    if let Some((path, _)) = &fifo {
        let _ = corten_runtime::blocking::run(|| std::fs::remove_file(path));
    }
    finish(ch, result, plain_errors).await;
}

static FIFO_SEQ: AtomicU64 = AtomicU64::new(0);

async fn run_exec(
    runtime: &ContainerRuntime,
    target: &ExecTarget,
    req: &ExecRequest,
    ch: &mut Channels,
    activity: &Activity,
    idle: Duration,
    fifo: Option<&(std::path::PathBuf, std::fs::File)>,
) -> Result<i32, String> {
    let mut cmd = runtime
        .exec_command(&target.container_id, req)
        .map_err(|e| e.to_string())?;
    cmd.stdin(if ch.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = corten_runtime::blocking::spawn(&mut cmd)
        .map_err(|e| format!("cannot run the exec helper: {e}"))?;

    let mut tasks = Vec::new();
    if let (Some(mut input), Some(mut to)) = (ch.stdin.take(), child.stdin.take()) {
        let activity = activity.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(data) = input.recv().await {
                activity.touch();
                if to.write_all(&data).await.is_err() {
                    break;
                }
            }
            // The client's EOF becomes the process's.
            let _ = to.shutdown().await;
        }));
    }
    let mut outputs = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push(tokio::spawn(pump_out(
            out,
            ch.stdout.clone(),
            activity.clone(),
        )));
    }
    if let Some(err) = child.stderr.take() {
        // With a tty the helper's stderr carries only its own failures.
        let sink = if target.tty {
            ch.stdout.clone()
        } else {
            ch.stderr.clone()
        };
        outputs.push(tokio::spawn(pump_out(err, sink, activity.clone())));
    }
    if let (Some(mut sizes), Some((_, file))) = (ch.resize.take(), fifo) {
        let file = file.try_clone().map_err(|e| e.to_string())?;
        tasks.push(tokio::spawn(async move {
            let mut file = tokio::fs::File::from_std(file);
            let mut pending = Vec::new();
            while let Some(data) = sizes.recv().await {
                pending.extend_from_slice(&data);
                for s in take_sizes(&mut pending) {
                    let line = format!("{} {}\n", s.width, s.height);
                    let _ = file.write_all(line.as_bytes()).await;
                }
            }
        }));
    }

    let mut gone = ch.gone.clone();
    let status = tokio::select! {
        status = child.wait() => status.map_err(|e| format!("waiting for the exec: {e}")),
        () = activity.idle(idle) => {
            let _ = stop_exec(&mut child).await;
            Err(format!("the session was idle for {idle:?} and was closed"))
        }
        () = client_gone(&mut gone) => {
            // Nobody is left to read the output: end the command.
            let _ = stop_exec(&mut child).await;
            Err("the client went away".to_string())
        }
    };
    for out in outputs {
        let _ = tokio::time::timeout(OUTPUT_GRACE, out).await;
    }
    for t in tasks {
        t.abort();
    }
    let status = status?;
    Ok(status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt as _;
        128 + status.signal().unwrap_or(0)
    }))
}

/// Attaches to the container's stdio through its shim until the container
/// exits or the client goes away.
pub async fn attach(
    runtime: &ContainerRuntime,
    target: AttachTarget,
    mut ch: Channels,
    idle: Duration,
    plain_errors: bool,
) {
    let result = run_attach(runtime, &target, &mut ch, idle).await;
    finish(ch, result.map(|()| 0), plain_errors).await;
}

async fn run_attach(
    runtime: &ContainerRuntime,
    target: &AttachTarget,
    ch: &mut Channels,
    idle: Duration,
) -> Result<(), String> {
    let activity = Activity::new();
    let conn = runtime
        .attach(&target.container_id, ch.stdin.is_some())
        .await
        .map_err(|e| e.to_string())?;
    let (mut from_shim, mut to_shim) = conn.into_split();
    let (in_tx, mut in_rx) = mpsc::channel::<Vec<u8>>(8);
    let mut tasks = Vec::new();
    if let Some(mut input) = ch.stdin.take() {
        let activity = activity.clone();
        let in_tx = in_tx.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(data) = input.recv().await {
                activity.touch();
                if in_tx
                    .send(frame::encode(frame::STDIN, &data))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // A zero-length frame closes the container's stdin (when it was
            // created with stdin_once; otherwise the shim keeps it open).
            let _ = in_tx.send(frame::encode(frame::STDIN, &[])).await;
        }));
    }
    drop(in_tx);
    tasks.push(tokio::spawn(async move {
        while let Some(bytes) = in_rx.recv().await {
            if to_shim.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // Dropping the write half would shut the connection down, which the
        // shim reads as a detach: hold it until the session ends.
        std::future::pending::<()>().await;
    }));
    if let Some(mut sizes) = ch.resize.take() {
        let runtime = runtime.clone();
        let id = target.container_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut pending = Vec::new();
            while let Some(data) = sizes.recv().await {
                pending.extend_from_slice(&data);
                for s in take_sizes(&mut pending) {
                    let _ = runtime.resize(&id, s.width, s.height).await;
                }
            }
        }));
    }
    let (stdout, stderr) = (ch.stdout.clone(), ch.stderr.clone());
    let tty = target.tty;
    let output = {
        let activity = activity.clone();
        async move {
            let mut buf = Vec::new();
            let mut chunk = vec![0u8; 32 * 1024];
            loop {
                match from_shim.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                activity.touch();
                for (stream, data) in frame::decode(&mut buf) {
                    let sink = match stream {
                        frame::STDERR if !tty => &stderr,
                        _ => &stdout,
                    };
                    if let Some(sink) = sink {
                        let _ = sink.write(data).await;
                    }
                }
            }
        }
    };
    let mut gone = ch.gone.clone();
    let result = tokio::select! {
        () = output => Ok(()),
        () = activity.idle(idle) => Err(format!("the session was idle for {idle:?} and was closed")),
        // Detaching leaves the container running.
        () = client_gone(&mut gone) => Ok(()),
    };
    for t in tasks {
        t.abort();
    }
    result
}

/// Writes the final status and closes every output.
async fn finish(ch: Channels, result: Result<i32, String>, plain_errors: bool) {
    if let Some(error) = &ch.error {
        let bytes = if plain_errors {
            match &result {
                Ok(0) => Vec::new(),
                Ok(code) => {
                    format!("command terminated with non-zero exit code: {code}").into_bytes()
                }
                Err(e) => e.clone().into_bytes(),
            }
        } else {
            status_json(result)
        };
        if !bytes.is_empty() {
            let _ = error.write(bytes).await;
        }
    }
    for sink in [&ch.stdout, &ch.stderr, &ch.error].into_iter().flatten() {
        sink.close().await;
    }
}
