//! Issue 4, as root: attach streams a running container's stdio through
//! its shim (output stays in the log too).

mod common;

use std::time::Duration;

use common::Env;
use corten_runtime::shim::protocol::frame;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Reads frames until the connection ends (or `limit` passes).
async fn read_frames(stream: &mut tokio::net::UnixStream) -> Vec<(u8, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("attach ended in time")
            .expect("read");
        if n == 0 {
            return frames;
        }
        buf.extend_from_slice(&chunk[..n]);
        frames.extend(frame::decode(&mut buf));
    }
}

fn joined(frames: &[(u8, Vec<u8>)], stream: u8) -> String {
    let bytes: Vec<u8> = frames
        .iter()
        .filter(|(s, _)| *s == stream)
        .flat_map(|(_, d)| d.clone())
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[tokio::test]
async fn attach_feeds_stdin_and_streams_both_outputs() {
    let env = Env::new();
    env.create(
        "att",
        &[
            "sh",
            "-c",
            "read line; echo got:$line; echo oops >&2; cat; echo end",
        ],
        |c| {
            c.stdin = true;
            c.stdin_once = true;
        },
    )
    .await;
    env.runtime.start("att").await.expect("start");
    let mut conn = env.runtime.attach("att", true).await.expect("attach");
    conn.write_all(&frame::encode(frame::STDIN, b"hello\nmore input\n"))
        .await
        .expect("send");
    // Closing stdin ends `cat`, then the container.
    conn.write_all(&frame::encode(frame::STDIN, b""))
        .await
        .expect("eof");
    let frames = read_frames(&mut conn).await;
    assert_eq!(
        joined(&frames, frame::STDOUT),
        "got:hello\nmore input\nend\n",
        "{frames:?}"
    );
    assert_eq!(joined(&frames, frame::STDERR), "oops\n");
    let exit = env
        .runtime
        .wait("att")
        .await
        .expect("wait")
        .exit
        .expect("exit");
    assert_eq!(exit.code, 0);
    // The log has it all too.
    let log = env.log_lines("att");
    assert!(log.iter().any(|l| l == "got:hello"), "{log:?}");
    env.runtime.delete("att").await.expect("delete");
}

#[tokio::test]
async fn attach_refuses_stdin_the_container_does_not_have() {
    let env = Env::new();
    env.create("nostdin", &["sleep", "1000"], |_| {}).await;
    env.runtime.start("nostdin").await.expect("start");
    let err = env
        .runtime
        .attach("nostdin", true)
        .await
        .expect_err("no stdin");
    assert_eq!(
        err.kind(),
        corten_runtime::ErrorKind::FailedPrecondition,
        "{err}"
    );
    // Output-only attach works; a kill ends it.
    let mut conn = env.runtime.attach("nostdin", false).await.expect("attach");
    env.runtime.kill("nostdin", 9, false).await.expect("kill");
    let frames = read_frames(&mut conn).await;
    assert!(frames.is_empty(), "{frames:?}");
    env.runtime.delete("nostdin").await.expect("delete");
}
