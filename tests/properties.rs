//! Property tests: pages survive the printer codec exactly, and no input of
//! any shape makes a decoder panic.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sirius::protocol::CommandKind;
use sirius::protocol::commands::decode_device_command;
use sirius::protocol::device::decode_device_event;
use sirius::protocol::events::{decode_bytes, decode_value};
use sirius::protocol::payload::{decode_payload, encode_payload};
use sirius::raster::Page;

/// Run lengths around every chunk boundary of the code, short ones, and
/// very long ones.
fn run_length() -> impl Strategy<Value = usize> {
    prop_oneof![
        3 => 1usize..12,
        1 => 250usize..=253,
        1 => 383usize..=385,
        1 => 767usize..=769,
        1 => 1151usize..=1153,
        1 => 1535usize..=1537,
        1 => 1538usize..5000,
        1 => 5000usize..200_000,
    ]
}

/// A page filled with alternating runs (starting with either colour), or
/// pure noise.
fn page() -> impl Strategy<Value = Page> {
    let runs = (
        1u32..=384,
        1u32..=600,
        any::<bool>(),
        prop::collection::vec(run_length(), 1..60),
    )
        .prop_map(|(w, h, start_black, runs)| {
            // Lay the runs out in pixel order, cycling if they fall short.
            let pixels = w as usize * h as usize;
            let mut flat = Vec::with_capacity(pixels);
            let mut black = start_black;
            'fill: loop {
                for &r in &runs {
                    for _ in 0..r {
                        if flat.len() == pixels {
                            break 'fill;
                        }
                        flat.push(black);
                    }
                    black = !black;
                }
            }
            Page::from_fn(w, h, |x, y| flat[y as usize * w as usize + x as usize]).unwrap()
        });
    let noise = (
        1u32..=384,
        1u32..=600,
        prop::collection::vec(any::<u64>(), 1..64),
    )
        .prop_map(|(w, h, seed)| {
            let mut i = 0usize;
            Page::from_fn(w, h, |_, _| {
                let bit = seed[(i / 64) % seed.len()] >> (i % 64) & 1 == 1;
                i += 1;
                bit
            })
            .unwrap()
        });
    prop_oneof![3 => runs, 1 => noise]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn page_payload_page_round_trip(page in page(), id in 1u32.., kind in 0usize..7) {
        let kind = CommandKind::ALL[kind];
        let pages = vec![page.clone(); kind.image_count()];
        let bytes = encode_payload(kind, id, &pages).unwrap();
        let back = decode_payload(&bytes, page.width()).unwrap();
        prop_assert_eq!(back.command, kind);
        prop_assert_eq!(back.file_id, id);
        prop_assert_eq!(back.pages, pages);
    }

    #[test]
    fn payload_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_payload(&bytes, 384);
        let _ = decode_device_event(&bytes);
        let _ = decode_bytes(&bytes);
    }

    /// Valid payloads with bytes flipped are refused or decoded, never a panic.
    #[test]
    fn corrupted_payloads_never_panic(
        page in page(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = encode_payload(CommandKind::SetDeliveryAndPrint, 3, &[page]).unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = decode_payload(&bytes, 384);
    }

    #[test]
    fn message_decoder_never_panics_on_any_json(v in json_value()) {
        let event = decode_value(&v);
        let _ = event.to_json();
        let _ = decode_device_command(&v.to_string(), 384);
    }

    /// Messages shaped like real ones, with every field of any type.
    #[test]
    fn message_decoder_never_panics_on_message_shapes(v in message_like()) {
        let event = decode_value(&v);
        let _ = event.to_json();
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "type",
            "bridge_address",
            "device_address",
            "json_payload",
            "name",
            "binary_payload",
            "command_id",
            "return_code",
            "timestamp",
            "records",
            "uptime",
            "model",
        ])
        .prop_map(String::from),
        "[a-z_]{1,12}",
    ]
}

fn message_like() -> impl Strategy<Value = Value> {
    let type_name = prop::sample::select(vec![
        "BridgeEvent",
        "BridgeLog",
        "DeviceEvent",
        "BridgeCommandResponse",
        "DeviceCommandResponse",
        "Other",
    ]);
    let name = prop::sample::select(vec![
        "power_on",
        "device_connect",
        "device_disconnect",
        "encryption_key_required",
        "reboot",
    ]);
    let address = || {
        prop_oneof![
            "[0-9a-fA-F]{16}".prop_map(Value::from),
            "[0-9a-z]{0,20}".prop_map(Value::from),
            json_value(),
        ]
    };
    let payload = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120).prop_map(|b| {
            use base64::Engine as _;
            Value::from(base64::engine::general_purpose::STANDARD.encode(b))
        }),
        json_value(),
    ];
    (
        type_name,
        name,
        address(),
        address(),
        payload,
        json_value(),
        json_value(),
    )
        .prop_map(|(t, n, bridge, device, payload, id, extra)| {
            json!({
                "type": t,
                "bridge_address": bridge,
                "device_address": device.clone(),
                "json_payload": {"name": n, "device_address": device, "uptime": extra.clone()},
                "binary_payload": payload,
                "command_id": id,
                "return_code": extra.clone(),
                "records": extra,
                "timestamp": 1.5,
            })
        })
}
