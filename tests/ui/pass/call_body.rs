//! The body stays callable, so it can be unit-tested without a runtime.

use durable::prelude::*;

/// Doubles a number.
#[activity]
pub async fn double(ctx: ActivityContext, x: u32) -> Result<u32, Error> {
    assert_eq!(ctx.instance_id(), "test-1");
    Ok(x * 2)
}

#[activity]
async fn fails(_ctx: ActivityContext) -> Result<(), Error> {
    Err(Error::msg("boom"))
}

/// Named like the helpers a macro might generate, to show the generated code does not
/// capture the name.
#[activity]
async fn call(_ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    Ok(n + 1)
}

#[activity]
async fn input(ctx: ActivityContext, n: u32) -> Result<u32, Error> {
    let _ = ctx;
    Ok(n + 2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(
        double(ActivityContext::for_test("test-1"), 21)
            .await
            .unwrap(),
        42
    );
    let err = fails(ActivityContext::for_test("test-1"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    assert_eq!(call(ActivityContext::for_test("t"), 1).await.unwrap(), 2);
    assert_eq!(input(ActivityContext::for_test("t"), 1).await.unwrap(), 3);

    // The handle is an ordinary value: `Copy`, `Debug`, `Default`, and still callable.
    let handle = double;
    let copy = handle;
    assert_eq!(format!("{copy:?}"), "double");
    let fresh: double = Default::default();
    assert_eq!(
        fresh(ActivityContext::for_test("test-1"), 1).await.unwrap(),
        2
    );
    assert_eq!(
        handle(ActivityContext::for_test("test-1"), 2)
            .await
            .unwrap(),
        4
    );
}
