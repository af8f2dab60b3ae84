use durable::EntityId;

#[derive(Default)]
pub struct Counter {
    value: i64,
}

fn main() {
    let _ = Counter::default().value;
    let _ = EntityId::of::<Counter>("k");
}
