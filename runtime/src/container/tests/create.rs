//! CreateContainer through the fake backend.

use super::*;
use crate::container::fake::{Call, CallKind, When};
use crate::container::NewContainer;
use crate::sandbox::PodContext;
use crate::ErrorKind;

fn request(name: &str) -> NewContainer {
    NewContainer {
        name: name.into(),
        image: IMAGE.into(),
        ..NewContainer::default()
    }
}

async fn create(h: &Harness, name: &str) -> Result<String, crate::Error> {
    h.containers
        .create(&h.images, &PodContext::default(), request(name))
        .await
        .map(String::from)
}

#[tokio::test]
async fn create_records_the_container_and_reserves_its_name() {
    let mut h = harness();
    let id = create(&h, "web").await.expect("create");
    let record = h.record(&id).expect("recorded");
    assert_eq!(record.state, ContainerState::Created);
    assert_eq!(record.stop_signal.as_deref(), Some("SIGTERM"));
    assert_eq!(record.chain_ids.len(), 1);
    assert_eq!(
        h.fake.calls(),
        [Call::Create {
            id: id.clone(),
            log_path: "/dev/null".into(),
            layers: 1,
            stdin: false,
        }]
    );
    assert_eq!(h.events(), [(EventKind::Created, id.clone())]);
    assert!(h.images.holds().held().len() == 1, "the layer is held");

    let again = create(&h, "web").await.expect_err("same name and attempt");
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    assert_eq!(h.fake.calls_of(CallKind::Create).len(), 1, "refused first");
}

#[tokio::test]
async fn create_failing_in_the_backend_leaves_no_record_and_frees_the_name() {
    for kind in [
        ErrorKind::Internal,
        ErrorKind::AlreadyExists,
        ErrorKind::InvalidArgument,
    ] {
        let mut h = harness();
        h.fake.fail(CallKind::Create, When::Nth(1), kind);
        let e = create(&h, "web").await.expect_err("create fails");
        assert_eq!(e.kind(), kind, "the backend's kind is propagated: {e}");
        assert!(h.containers.list(&Default::default()).is_empty());
        assert!(
            h.images.holds().held().is_empty(),
            "the layer hold is released"
        );
        assert!(h.events().is_empty(), "no Created event");
        assert!(h.fake.calls_of(CallKind::Delete).is_empty());

        // The name is free again: the retry succeeds.
        let id = create(&h, "web").await.expect("retry");
        assert_eq!(
            h.record(&id).expect("record").state,
            ContainerState::Created
        );
        assert_eq!(h.events(), [(EventKind::Created, id)]);
    }
}

#[tokio::test]
async fn create_of_a_missing_image_asks_no_shim() {
    let h = harness();
    let mut req = request("web");
    req.image = "not-pulled".into();
    let e = h
        .containers
        .create(&h.images, &PodContext::default(), req)
        .await
        .expect_err("no image");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(h.fake.calls().is_empty());
    assert!(h.images.holds().held().is_empty());
    create(&h, "web").await.expect("the name is free");
}

#[tokio::test]
async fn the_status_image_is_the_name_the_user_asked_for() {
    let h = harness();
    let id = image_record().id.to_string();
    let ask = |image: &str, user: Option<&str>| NewContainer {
        name: format!("c{}", image.len() + user.map_or(0, str::len)),
        image: image.into(),
        user_specified_image: user.map(str::to_string),
        ..NewContainer::default()
    };
    let cases = [
        // kubelet: the id, and the name it resolved.
        (ask(&id, Some("fake:1.0")), "fake:1.0"),
        // by id alone (or an id prefix): the image's repo tag.
        (ask(&id, None), "docker.io/library/fake:latest"),
        (
            ask(&id["sha256:".len()..][..12], None),
            "docker.io/library/fake:latest",
        ),
        // by name: that name.
        (ask(IMAGE, None), IMAGE),
    ];
    for (req, want) in cases {
        let made = h
            .containers
            .create(&h.images, &PodContext::default(), req)
            .await
            .expect("create");
        let record = h.record(&made).expect("recorded");
        assert_eq!(record.image, want);
        assert_eq!(record.image_id.to_string(), id);
    }
}

#[tokio::test]
async fn a_stop_signal_that_cannot_be_sent_is_refused_at_create() {
    let h = harness();
    let mut req = request("web");
    req.config.stop_signal = Some("SIGNOPE".into());
    let e = h
        .containers
        .create(&h.images, &PodContext::default(), req)
        .await
        .expect_err("bad signal");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(h.fake.calls().is_empty());

    let mut req = request("web");
    req.config.stop_signal = Some("SIGRTMAX-2".into());
    let id = h
        .containers
        .create(&h.images, &PodContext::default(), req)
        .await
        .expect("create");
    let record = h.record(&id).expect("recorded");
    assert_eq!(record.stop_signal_in_effect(), Some("SIGRTMAX-2"));
    assert_eq!(
        record.stop_signal.as_deref(),
        Some("SIGTERM"),
        "the image's"
    );
}

fn with_volume(name: &str, image: &str, sub_path: &str) -> NewContainer {
    let mut req = request(name);
    req.config.mounts.push(crate::spec::MountConfig {
        container_path: "/vol".into(),
        readonly: true,
        image: Some(crate::spec::ImageMount {
            image: image.into(),
            sub_path: sub_path.into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    req
}

#[tokio::test]
async fn an_image_volume_is_resolved_held_and_recorded() {
    let h = harness();
    let id = h
        .containers
        .create(
            &h.images,
            &PodContext::default(),
            with_volume("v", IMAGE, ""),
        )
        .await
        .expect("create")
        .to_string();
    let record = h.record(&id).expect("recorded");
    let m = &record.mounts[0];
    let image = m.image.as_ref().expect("the image volume");
    assert_eq!(image.image_id, image_record().id.to_string());
    assert_eq!(image.chain_ids.len(), 1);
    assert!(m.readonly);
    assert_eq!(
        m.host_path,
        std::path::Path::new("/nonexistent/fake-bundles")
            .join(&id)
            .join("image-volumes/0"),
        "the shim mounts it in the bundle"
    );
    assert_eq!(h.images.holds().held().len(), 1, "held");
    h.containers.remove(&id).await.expect("remove");
    assert!(h.images.holds().held().is_empty(), "released");
}

#[tokio::test]
async fn a_bad_image_volume_leaves_nothing() {
    for (image, sub, kind) in [
        ("nope", "", ErrorKind::NotFound),
        (IMAGE, "missing", ErrorKind::InvalidArgument),
    ] {
        let h = harness();
        let e = h
            .containers
            .create(
                &h.images,
                &PodContext::default(),
                with_volume("v", image, sub),
            )
            .await
            .expect_err("refused");
        assert_eq!(e.kind(), kind, "{e}");
        let named = if sub.is_empty() { image } else { sub };
        assert!(e.to_string().contains(named), "{e}");
        assert!(h.containers.list(&Default::default()).is_empty());
        assert!(h.fake.calls_of(CallKind::Create).is_empty());
        assert!(h.images.holds().held().is_empty(), "nothing held");
    }
}
