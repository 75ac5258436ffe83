//! Tests of the SPDY frame codec: byte layouts written out from the
//! SPDY/3.1 draft, and frames as a Go client writes them.

use super::*;

fn one(bytes: &[u8]) -> Frame {
    let mut buf = bytes.to_vec();
    let f = FrameReader::default()
        .parse(&mut buf)
        .expect("valid")
        .expect("whole");
    assert!(buf.is_empty(), "the frame was consumed");
    f
}

fn encoded(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    FrameWriter::default().encode(frame, &mut out);
    out
}

// Byte layouts below are written out from the SPDY/3.1 draft, 2.6.

#[test]
fn ping_layout() {
    let bytes = [0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 7];
    assert_eq!(one(&bytes), Frame::Ping { id: 7 });
    assert_eq!(encoded(&Frame::Ping { id: 7 }), bytes);
}

#[test]
fn data_layout_with_fin() {
    let bytes = [0x00, 0x00, 0x00, 0x05, 0x01, 0x00, 0x00, 0x02, b'h', b'i'];
    let frame = Frame::Data {
        stream_id: 5,
        fin: true,
        data: b"hi".to_vec(),
    };
    assert_eq!(one(&bytes), frame);
    assert_eq!(encoded(&frame), bytes);
    // An empty DATA frame with FIN: the usual half-close.
    let empty = Frame::Data {
        stream_id: 3,
        fin: true,
        data: Vec::new(),
    };
    assert_eq!(encoded(&empty), [0, 0, 0, 3, 1, 0, 0, 0]);
}

#[test]
fn rst_goaway_window_update_layouts() {
    let rst = [
        0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 0, 0, 5,
    ];
    let frame = Frame::RstStream {
        stream_id: 1,
        status: rst::CANCEL,
    };
    assert_eq!(one(&rst), frame);
    assert_eq!(encoded(&frame), rst);
    let goaway = [
        0x80, 0x03, 0x00, 0x07, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 9, 0, 0, 0, 0,
    ];
    assert_eq!(
        one(&goaway),
        Frame::GoAway {
            last_good_stream_id: 9,
            status: 0
        }
    );
    let wu = [
        0x80, 0x03, 0x00, 0x09, 0x00, 0x00, 0x00, 0x08, 0, 0, 0, 1, 0, 1, 0, 0,
    ];
    assert_eq!(
        one(&wu),
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 65536
        }
    );
    // SETTINGS with one entry is read and ignored.
    let settings = [
        0x80, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
    ];
    assert_eq!(one(&settings), Frame::Settings);
}

#[test]
fn partial_input_waits_for_more() {
    let mut r = FrameReader::default();
    let mut buf = vec![0x80, 0x03, 0x00, 0x06, 0x00, 0x00];
    assert_eq!(r.parse(&mut buf), Ok(None));
    buf.extend_from_slice(&[0x00, 0x04, 0, 0, 0]);
    assert_eq!(r.parse(&mut buf), Ok(None));
    buf.push(1);
    assert_eq!(r.parse(&mut buf), Ok(Some(Frame::Ping { id: 1 })));
}

#[test]
fn other_versions_are_refused() {
    let v2 = [0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1];
    let mut buf = v2.to_vec();
    assert_eq!(
        FrameReader::default().parse(&mut buf),
        Err(FrameError::Version(2))
    );
}

#[test]
fn header_blocks_round_trip_across_frames_of_one_direction() {
    let mut w = FrameWriter::default();
    let mut r = FrameReader::default();
    let mut wire = Vec::new();
    let syn = Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: vec![("streamtype".into(), "error".into())],
    };
    let syn2 = Frame::SynStream {
        stream_id: 3,
        associated_to: 0,
        priority: 0,
        fin: true,
        unidirectional: false,
        headers: vec![
            ("streamtype".into(), "data".into()),
            ("port".into(), "8080".into()),
            ("requestid".into(), "0".into()),
        ],
    };
    let reply = Frame::SynReply {
        stream_id: 1,
        fin: false,
        headers: Vec::new(),
    };
    for f in [&syn, &syn2, &reply] {
        w.encode(f, &mut wire);
    }
    // The first block needs the SPDY dictionary: a plain zlib stream
    // cannot read it.
    let mut plain = Decompress::new(true);
    let mut sink = Vec::with_capacity(1024);
    let first_block = &wire[8 + 10..];
    let e = plain
        .decompress_vec(first_block, &mut sink, FlushDecompress::Sync)
        .expect_err("needs the dictionary");
    assert!(e.needs_dictionary().is_some());

    assert_eq!(r.parse(&mut wire), Ok(Some(syn)));
    assert_eq!(r.parse(&mut wire), Ok(Some(syn2)));
    assert_eq!(r.parse(&mut wire), Ok(Some(reply)));
    assert!(wire.is_empty());
}

#[test]
fn malformed_header_blocks_are_errors_not_panics() {
    assert!(parse_header_block("t", &[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
    assert!(parse_header_block("t", &[0, 0]).is_err());
    assert!(parse_header_block("t", &[0xff, 0xff, 0xff, 0xff]).is_err());
    // A SYN_STREAM whose block is garbage.
    let mut bad = vec![0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0e];
    bad.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]);
    assert!(matches!(
        FrameReader::default().parse(&mut bad),
        Err(FrameError::Malformed { .. })
    ));
    // Too short for its type.
    let mut short = vec![0x80, 0x03, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0, 0];
    assert!(FrameReader::default().parse(&mut short).is_err());
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect()
}

#[test]
fn reads_what_a_go_client_writes() {
    // Two SYN_STREAMs as client-go's SPDY framer writes them (first and
    // second header block of one zlib stream).
    let mut wire = hex(
        "80 03 00 01 00 00 00 29 00 00 00 01 00 00 00 00 00 00 78 f9 e3 c6 a7 c2 62 60 60 60 \
         04 a7 b3 92 a2 d4 c4 5c 68 51 c2 9a 0a 0a 68 00 00 00 00 ff ff \
         80 03 00 01 00 00 00 17 00 00 00 03 00 00 00 00 00 00 c2 2e 55 5c 92 92 99 07 00 \
         00 00 ff ff",
    );
    let mut r = FrameReader::default();
    let syn = |id: u32, ty: &str| Frame::SynStream {
        stream_id: id,
        associated_to: 0,
        priority: 0,
        fin: false,
        unidirectional: false,
        headers: vec![("streamtype".into(), ty.into())],
    };
    assert_eq!(r.parse(&mut wire), Ok(Some(syn(1, "error"))));
    assert_eq!(r.parse(&mut wire), Ok(Some(syn(3, "stdin"))));
    // And what a Go server answers, through a reader of the other way.
    let mut replies = hex(
        "80 03 00 02 00 00 00 14 00 00 00 01 78 f9 e3 c6 a7 c2 62 60 60 60 00 00 00 00 ff ff \
         80 03 00 02 00 00 00 0c 00 00 00 03 02 61 00 00 00 00 ff ff",
    );
    let mut back = FrameReader::default();
    for id in [1, 3] {
        assert_eq!(
            back.parse(&mut replies),
            Ok(Some(Frame::SynReply {
                stream_id: id,
                fin: false,
                headers: Vec::new()
            }))
        );
    }
}

#[test]
fn writes_the_dictionary_id_first() {
    let mut out = Vec::new();
    FrameWriter::default().encode(
        &Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: Vec::new(),
        },
        &mut out,
    );
    // zlib header with FDICT, then the SPDY/3 dictionary's adler32,
    // and a sync flush at the end.
    assert_eq!(out[12] & 0x20, 0x20, "FDICT set: {out:02x?}");
    assert_eq!(&out[14..18], &[0xe3, 0xc6, 0xa7, 0xc2]);
    assert!(out.ends_with(&[0x00, 0x00, 0xff, 0xff]));
}

#[test]
fn big_headers_survive_compression() {
    let mut w = FrameWriter::default();
    let mut r = FrameReader::default();
    let value: String = (0..20_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let f = Frame::Headers {
        stream_id: 1,
        fin: false,
        headers: vec![("x-big".into(), value)],
    };
    let mut wire = Vec::new();
    w.encode(&f, &mut wire);
    assert_eq!(r.parse(&mut wire), Ok(Some(f)));
}
