//! Constant `DequantizeLinear` nodes (a QDQ file's weights and biases) folded into f32 initializers
//! before tract reads the graph.
//!
//! tract would fold them itself, but through its generic broadcasting arithmetic, more than once
//! while it infers and declutters the graph: 0.45 s of the 0.63 s it took to load open_nsfw's int8
//! file. This computes each value once, with the same f32 operations tract's expansion of the node
//! runs, so the graph tract builds holds the same weights bit for bit: `(q − zero) as f32 · scale`
//! for one scale and zero point (tract's `DequantizeLinearF32`), `(q as f32 − zero as f32) · scale`
//! per axis (its cast, `sub` and `mul`).

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;
use tract_onnx::prelude::*;

/// A constant tensor of the graph, as tract reads it.
fn load(onnx: &tract_onnx::Onnx, t: &pb::TensorProto) -> Option<Tensor> {
    tract_onnx::tensor::load_tensor(&*onnx.provider, t, None).ok()
}

/// The integer values of a quantized tensor or zero point (i8, u8 or i32), widened.
fn integers(t: &Tensor) -> Option<Vec<i64>> {
    let plain = t.try_as_plain_ram().ok()?;
    match t.datum_type() {
        DatumType::I8 => Some(
            plain
                .as_slice::<i8>()
                .ok()?
                .iter()
                .map(|&v| v.into())
                .collect(),
        ),
        DatumType::U8 => Some(
            plain
                .as_slice::<u8>()
                .ok()?
                .iter()
                .map(|&v| v.into())
                .collect(),
        ),
        DatumType::I32 => Some(
            plain
                .as_slice::<i32>()
                .ok()?
                .iter()
                .map(|&v| v.into())
                .collect(),
        ),
        _ => None,
    }
}

/// What one constant `DequantizeLinear` computes, or `None` when it is not one this folds (tract
/// then runs the node as before).
fn dequantized(
    onnx: &tract_onnx::Onnx,
    node: &pb::NodeProto,
    initializers: &HashMap<&str, &pb::TensorProto>,
) -> Option<pb::TensorProto> {
    if node.input.len() < 2 || node.input.len() > 3 || node.output.len() != 1 {
        return None;
    }
    if node
        .attribute
        .iter()
        .any(|a| a.name == "block_size" && a.i != 0)
    {
        return None;
    }
    let input = |i: usize| initializers.get(node.input[i].as_str()).copied();
    let q = load(onnx, input(0)?)?;
    let scale = load(onnx, input(1)?)?;
    if scale.datum_type() != f32::datum_type() {
        return None;
    }
    let scales = scale
        .try_as_plain_ram()
        .ok()?
        .as_slice::<f32>()
        .ok()?
        .to_vec();
    let values = integers(&q)?;
    let zeros = match node.input.get(2) {
        Some(name) => {
            let zero = load(onnx, initializers.get(name.as_str())?)?;
            if zero.datum_type() != q.datum_type() {
                return None;
            }
            integers(&zero)?
        }
        None => vec![0],
    };
    if scales.is_empty() || zeros.is_empty() {
        return None;
    }
    let out: Vec<f32> = if scales.len() == 1 && zeros.len() == 1 {
        // tract's DequantizeLinearF32: the difference in i32, then one f32 product.
        let (scale, zero) = (scales[0], i32::try_from(zeros[0]).ok()?);
        values
            .iter()
            .map(|&v| Some(i32::try_from(v).ok()?.checked_sub(zero)? as f32 * scale))
            .collect::<Option<_>>()?
    } else {
        // Per axis: one scale and zero point per index of `axis`, each of length 1 or that axis's.
        let rank = q.rank() as i64;
        let axis = node
            .attribute
            .iter()
            .find(|a| a.name == "axis")
            .map_or(1, |a| a.i);
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) {
            return None;
        }
        let axis = axis as usize;
        let len = q.shape()[axis];
        let inner: usize = q.shape()[axis + 1..].iter().product();
        let fits = |n: usize| n == 1 || n == len;
        if !fits(scales.len()) || !fits(zeros.len()) {
            return None;
        }
        let mut out = Vec::with_capacity(values.len());
        for (i, block) in values.chunks(inner.max(1)).enumerate() {
            let c = i % len;
            let scale = scales[if scales.len() == 1 { 0 } else { c }];
            let zero = zeros[if zeros.len() == 1 { 0 } else { c }] as f32;
            out.extend(block.iter().map(|&v| (v as f32 - zero) * scale));
        }
        out
    };
    Some(pb::TensorProto {
        name: node.output[0].clone(),
        dims: q.shape().iter().map(|&d| d as i64).collect(),
        data_type: pb::tensor_proto::DataType::Float as i32,
        raw_data: out.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    })
}

/// Replaces every `DequantizeLinear` whose inputs are all initializers by an initializer holding
/// its f32 output, and drops the initializers nothing reads any more. Returns how many it folded.
pub(crate) fn fold_constant_dequantize(
    onnx: &tract_onnx::Onnx,
    proto: &mut pb::ModelProto,
) -> usize {
    let Some(graph) = proto.graph.as_mut() else {
        return 0;
    };
    let outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let folded: Vec<(usize, pb::TensorProto)> = {
        let initializers: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.op_type == "DequantizeLinear" && n.domain.is_empty())
            .filter(|(_, n)| n.output.iter().all(|o| !outputs.contains(o)))
            .filter_map(|(i, n)| Some((i, dequantized(onnx, n, &initializers)?)))
            .collect()
    };
    let count = folded.len();
    if count == 0 {
        return 0;
    }
    let gone: HashSet<usize> = folded.iter().map(|(i, _)| *i).collect();
    let inputs: HashSet<String> = gone
        .iter()
        .flat_map(|&i| graph.node[i].input.iter().cloned())
        .collect();
    let mut index = 0;
    graph.node.retain(|_| {
        index += 1;
        !gone.contains(&(index - 1))
    });
    graph
        .initializer
        .extend(folded.into_iter().map(|(_, tensor)| tensor));
    // The folded nodes' inputs that nothing else reads are dropped, so that tract does not load
    // them; not in a graph with subgraphs, which may read them by name.
    let subgraphs = graph
        .node
        .iter()
        .flat_map(|n| n.attribute.iter())
        .any(|a| a.g.is_some() || !a.graphs.is_empty());
    if !subgraphs {
        let read: HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter())
            .chain(graph.output.iter().map(|o| &o.name))
            .map(String::as_str)
            .collect();
        let unread =
            |t: &pb::TensorProto| inputs.contains(&t.name) && !read.contains(t.name.as_str());
        let kept: Vec<pb::TensorProto> =
            graph.initializer.drain(..).filter(|t| !unread(t)).collect();
        graph.initializer = kept;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::tensor_proto::DataType;

    fn tensor(name: &str, dt: DataType, dims: &[i64], raw: Vec<u8>) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: dt as i32,
            raw_data: raw,
            ..Default::default()
        }
    }

    fn f32s(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn node(
        op: &str,
        name: &str,
        inputs: &[&str],
        output: &str,
        axis: Option<i64>,
    ) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            attribute: axis
                .map(|i| pb::AttributeProto {
                    name: "axis".into(),
                    i,
                    r#type: pb::attribute_proto::AttributeType::Int as i32,
                    ..Default::default()
                })
                .into_iter()
                .collect(),
            ..Default::default()
        }
    }

    fn value(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
        use pb::tensor_shape_proto::{dimension, Dimension};
        pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| Dimension {
                                value: Some(dimension::Value::DimValue(d)),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// The cases: a `DequantizeLinear` per (inputs, axis), each of `x + DequantizeLinear(…)` a graph
    /// output, plus one whose quantized input is not constant, `x + DequantizeLinear(QuantizeLinear(x))`.
    const CASES: [(&[&str], Option<i64>); 8] = [
        (&["q8", "s1", "z8"], None),
        (&["u8", "s1", "zu"], None),
        (&["q32", "s1", "z32"], None),
        (&["q8", "s1"], None),
        (&["q8", "s2"], Some(0)),
        (&["u8", "s3", "zu3"], Some(1)),
        (&["q8", "s4"], Some(-1)),
        (&["q32", "s3"], Some(1)),
    ];

    fn model() -> pb::ModelProto {
        // Scales that are not powers of two, both signs, and each type's extremes (i32 ones that
        // f32 rounds).
        let i8s: Vec<u8> = (0..24).map(|i| (i as i8).wrapping_mul(11) as u8).collect();
        let u8s: Vec<u8> = (0..24).map(|i| (i * 11) as u8).collect();
        let i32s: Vec<u8> = [
            i32::MIN,
            -70_000_001,
            -5,
            0,
            7,
            16_777_217,
            123_456_789,
            i32::MAX,
        ]
        .iter()
        .cycle()
        .take(24)
        .flat_map(|v| v.to_le_bytes())
        .collect();
        let dims = [2i64, 3, 4];
        let initializer = vec![
            tensor("q8", DataType::Int8, &dims, i8s),
            tensor("u8", DataType::Uint8, &dims, u8s),
            tensor("q32", DataType::Int32, &dims, i32s),
            tensor("s1", DataType::Float, &[], f32s(&[0.0123])),
            tensor("s2", DataType::Float, &[2], f32s(&[0.3, -1.7e-3])),
            tensor("s3", DataType::Float, &[3], f32s(&[0.1, 0.2, 0.7])),
            tensor("s4", DataType::Float, &[4], f32s(&[3.3e-5, 1.0, 0.5, 9.1])),
            tensor("z8", DataType::Int8, &[], vec![3]),
            tensor("zu", DataType::Uint8, &[], vec![131]),
            tensor("zu3", DataType::Uint8, &[3], vec![0, 128, 255]),
            tensor("z32", DataType::Int32, &[], 0i32.to_le_bytes().to_vec()),
            tensor("unused", DataType::Float, &[], f32s(&[1.0])),
        ];
        let mut nodes = vec![
            node("QuantizeLinear", "qx", &["x", "s1", "zu"], "xq", None),
            node("DequantizeLinear", "dqx", &["xq", "s1", "zu"], "xdq", None),
            node("Add", "addx", &["x", "xdq"], "yx", None),
        ];
        let mut output = vec![value("yx", &dims)];
        for (i, (inputs, axis)) in CASES.iter().enumerate() {
            let d = format!("d{i}");
            nodes.push(node(
                "DequantizeLinear",
                &format!("dq{i}"),
                inputs,
                &d,
                *axis,
            ));
            nodes.push(node(
                "Add",
                &format!("add{i}"),
                &["x", &d],
                &format!("y{i}"),
                None,
            ));
            output.push(value(&format!("y{i}"), &dims));
        }
        pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: 13,
            }],
            graph: Some(pb::GraphProto {
                name: "dequantize".into(),
                node: nodes,
                initializer,
                input: vec![value("x", &dims)],
                output,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Every output of `proto` as tract computes it, for `x`.
    fn run(onnx: &tract_onnx::Onnx, proto: &pb::ModelProto, x: &[f32]) -> Vec<Vec<u32>> {
        let plan = onnx
            .model_for_proto_model(proto)
            .unwrap()
            .into_typed()
            .unwrap()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let x = tract_ndarray::Array3::from_shape_vec((2, 3, 4), x.to_vec()).unwrap();
        plan.run(tvec!(Tensor::from(x).into()))
            .unwrap()
            .iter()
            .map(|t| {
                let t = t.to_plain_array_view::<f32>().unwrap();
                t.iter().map(|v| v.to_bits()).collect()
            })
            .collect()
    }

    #[test]
    fn folded_dequantizations_hold_what_tract_computes_bit_for_bit() {
        let onnx = tract_onnx::onnx();
        let original = model();
        let mut folded = original.clone();
        assert_eq!(fold_constant_dequantize(&onnx, &mut folded), CASES.len());
        let graph = folded.graph.as_ref().unwrap();
        // Only the dequantization of a computed tensor is left.
        let left: Vec<&str> = graph
            .node
            .iter()
            .filter(|n| n.op_type == "DequantizeLinear")
            .map(|n| n.name.as_str())
            .collect();
        assert_eq!(left, ["dqx"]);
        // The quantized tensors and their zero points are gone, except what `dqx` still reads;
        // an initializer no folded node read stays.
        let names: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        for gone in ["q8", "u8", "q32", "s2", "s3", "s4", "z8", "zu3", "z32"] {
            assert!(!names.contains(gone), "{gone} is still there");
        }
        for kept in ["s1", "zu", "unused", "d0", "d7"] {
            assert!(names.contains(kept), "{kept} is gone");
        }
        let x: Vec<f32> = (0..24).map(|i| i as f32 * 0.37 - 4.0).collect();
        let (want, got) = (run(&onnx, &original, &x), run(&onnx, &folded, &x));
        assert_eq!(want.len(), CASES.len() + 1);
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w, g, "output {i} differs");
        }
        // And with x = 0, each output is its dequantized tensor itself: not all zero.
        let zero = run(&onnx, &folded, &[0.0; 24]);
        assert!(zero[1..].iter().all(|o| o.iter().any(|&b| b != 0)));
    }

    /// `model()` with `change` applied: how many nodes fold, and whether `dq{stays}` is left.
    fn folds_without(stays: usize, change: impl FnOnce(&mut pb::GraphProto)) {
        let onnx = tract_onnx::onnx();
        let mut proto = model();
        let graph = proto.graph.as_mut().unwrap();
        change(graph);
        assert_eq!(fold_constant_dequantize(&onnx, &mut proto), CASES.len() - 1);
        let graph = proto.graph.as_ref().unwrap();
        let name = format!("dq{stays}");
        assert!(
            graph.node.iter().any(|n| n.name == name),
            "{name} was folded"
        );
    }

    fn node_named<'a>(graph: &'a mut pb::GraphProto, name: &str) -> &'a mut pb::NodeProto {
        graph.node.iter_mut().find(|n| n.name == name).unwrap()
    }

    #[test]
    fn a_dequantization_that_is_a_graph_output_stays() {
        folds_without(0, |graph| graph.output.push(value("d0", &[2, 3, 4])));
    }

    #[test]
    fn a_blocked_dequantization_stays() {
        folds_without(2, |graph| {
            node_named(graph, "dq2").attribute.push(pb::AttributeProto {
                name: "block_size".into(),
                i: 2,
                r#type: pb::attribute_proto::AttributeType::Int as i32,
                ..Default::default()
            })
        });
    }

    #[test]
    fn a_dequantization_with_a_zero_point_of_another_type_stays() {
        folds_without(1, |graph| node_named(graph, "dq1").input[2] = "z8".into());
    }

    #[test]
    fn a_dequantization_with_a_computed_scale_stays() {
        folds_without(4, |graph| node_named(graph, "dq4").input[1] = "x".into());
    }
}
