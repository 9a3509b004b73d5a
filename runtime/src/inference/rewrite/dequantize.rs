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

use super::weights::QuantizedWeights;

/// A small constant tensor of the graph (a scale), as tract reads it.
fn load(onnx: &tract_onnx::Onnx, t: &pb::TensorProto) -> Option<Tensor> {
    tract_onnx::tensor::load_tensor(&*onnx.provider, t, None).ok()
}

/// Where a constant integer tensor's values lie in the file.
#[derive(Clone, Copy)]
enum Data<'a> {
    /// `raw_data`, little-endian.
    Raw(&'a [u8]),
    /// `int32_data`, one value per entry whatever the type.
    Field(&'a [i32]),
}

/// A constant quantized tensor or zero point of the file (i8, u8 or i32), read in place: the
/// weights are the bulk of a quantized file, and copying them into a tensor, then widening them,
/// was most of what folding cost. Its values are the ones tract reads: `raw_data` when there is
/// any, else `int32_data` cast to the type.
pub(super) struct Integers<'a> {
    datum_type: DatumType,
    shape: Vec<usize>,
    data: Data<'a>,
}

impl<'a> Integers<'a> {
    /// The tensor, or `None` when it is of another type, kept outside the file, or its data does
    /// not fill its shape (tract then reads it, or rejects it, as before).
    fn read(t: &'a pb::TensorProto) -> Option<Self> {
        use pb::tensor_proto::{DataLocation, DataType};
        let datum_type = match DataType::try_from(t.data_type).ok()? {
            DataType::Int8 => DatumType::I8,
            DataType::Uint8 => DatumType::U8,
            DataType::Int32 => DatumType::I32,
            _ => return None,
        };
        if t.data_location == Some(DataLocation::External as i32) {
            return None;
        }
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<Vec<usize>>>()?;
        let len = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))?;
        let data = if !t.raw_data.is_empty() {
            (t.raw_data.len() == len.checked_mul(datum_type.size_of())?)
                .then_some(Data::Raw(&t.raw_data))?
        } else {
            (t.int32_data.len() == len).then_some(Data::Field(&t.int32_data))?
        };
        Some(Integers {
            datum_type,
            shape,
            data,
        })
    }

    pub(super) fn datum_type(&self) -> DatumType {
        self.datum_type
    }

    pub(super) fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub(super) fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Every value, widened: for the few values of a zero point.
    pub(super) fn to_vec(&self) -> Vec<i32> {
        let mut values = Vec::with_capacity(self.len());
        self.blocks(|_, block| values.extend_from_slice(block));
        values
    }

    /// `f(first, values)` for consecutive blocks of the values, widened, in order: the kind of
    /// storage is matched once per block and both loops are tight ones (one call per weight of
    /// a file was a tenth of its load).
    pub(super) fn blocks(&self, mut f: impl FnMut(usize, &[i32])) {
        // Small in the unit tests, whose tensors then span several blocks and a partial one.
        const BLOCK: usize = if cfg!(test) { 5 } else { 1024 };
        let mut buffer = [0i32; BLOCK];
        let len = self.len();
        let mut first = 0;
        while first < len {
            let n = (len - first).min(BLOCK);
            let block = &mut buffer[..n];
            let range = first..first + n;
            match (self.data, self.datum_type) {
                (Data::Raw(b), DatumType::I8) => {
                    for (v, &b) in block.iter_mut().zip(&b[range]) {
                        *v = i32::from(b as i8);
                    }
                }
                (Data::Raw(b), DatumType::U8) => {
                    for (v, &b) in block.iter_mut().zip(&b[range]) {
                        *v = i32::from(b);
                    }
                }
                (Data::Raw(b), _) => {
                    for (v, w) in block
                        .iter_mut()
                        .zip(b[4 * first..4 * (first + n)].chunks_exact(4))
                    {
                        *v = i32::from_le_bytes([w[0], w[1], w[2], w[3]]);
                    }
                }
                (Data::Field(f), DatumType::I8) => {
                    for (v, &f) in block.iter_mut().zip(&f[range]) {
                        *v = i32::from(f as i8);
                    }
                }
                (Data::Field(f), DatumType::U8) => {
                    for (v, &f) in block.iter_mut().zip(&f[range]) {
                        *v = i32::from(f as u8);
                    }
                }
                (Data::Field(f), _) => block.copy_from_slice(&f[range]),
            }
            f(first, block);
            first += n;
        }
    }
}

/// A `DequantizeLinear` whose inputs are all constants of the file, read once for both the
/// folding here and the integer convolutions' weights (`weights`).
pub(super) struct Constant<'a> {
    /// The quantized tensor.
    pub(super) q: Integers<'a>,
    /// Its scales: one, or one per index of `axis`.
    pub(super) scales: Vec<f32>,
    /// Its zero points, when the node has them.
    pub(super) zeros: Option<Integers<'a>>,
    /// The `axis` attribute (1 when absent), not normalised.
    pub(super) axis: i64,
    /// Whether it has a `block_size`, which neither folds.
    pub(super) blocked: bool,
}

impl<'a> Constant<'a> {
    /// The node's constant inputs, or `None` when one is computed or not one this reads.
    fn read(
        onnx: &tract_onnx::Onnx,
        node: &pb::NodeProto,
        initializers: &HashMap<&str, &'a pb::TensorProto>,
    ) -> Option<Self> {
        if node.input.len() < 2 || node.input.len() > 3 || node.output.len() != 1 {
            return None;
        }
        let input = |i: usize| initializers.get(node.input[i].as_str()).copied();
        let q = Integers::read(input(0)?)?;
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
        let zeros = match node.input.get(2) {
            Some(_) => Some(Integers::read(input(2)?)?),
            None => None,
        };
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
        Some(Constant {
            q,
            scales,
            zeros,
            axis: attribute("axis").map_or(1, |a| a.i),
            blocked: attribute("block_size").is_some_and(|a| a.i != 0),
        })
    }

    /// What the node computes, as an f32 initializer named `name`, or `None` when it is not one
    /// this folds (tract then runs the node as before).
    fn folded(&self, name: &str) -> Option<pb::TensorProto> {
        let q = &self.q;
        if self.blocked || self.scales.is_empty() {
            return None;
        }
        let zeros: Vec<i32> = match &self.zeros {
            Some(z) if z.datum_type() != q.datum_type() => return None,
            Some(z) => z.to_vec(),
            None => vec![0],
        };
        if zeros.is_empty() {
            return None;
        }
        // The f32 values' bytes, little-endian, as `raw_data` holds them.
        let mut raw = vec![0u8; q.len() * 4];
        let bytes_of = |first: usize, n: usize| 4 * first..4 * (first + n);
        if self.scales.len() == 1 && zeros.len() == 1 {
            // tract's DequantizeLinearF32: the difference in i32, then one f32 product.
            let (scale, zero) = (self.scales[0], zeros[0]);
            let mut overflow = false;
            q.blocks(|first, block| {
                for (bytes, &v) in raw[bytes_of(first, block.len())]
                    .chunks_exact_mut(4)
                    .zip(block)
                {
                    let (difference, overflows) = v.overflowing_sub(zero);
                    overflow |= overflows;
                    bytes.copy_from_slice(&(difference as f32 * scale).to_le_bytes());
                }
            });
            if overflow {
                return None;
            }
        } else {
            // Per axis: one scale and zero point per index of `axis`, each of length 1 or that
            // axis's.
            let rank = q.shape().len() as i64;
            let axis = if self.axis < 0 {
                self.axis + rank
            } else {
                self.axis
            };
            if !(0..rank).contains(&axis) {
                return None;
            }
            let axis = axis as usize;
            let len = q.shape()[axis];
            let inner = q.shape()[axis + 1..].iter().product::<usize>().max(1);
            let fits = |n: usize| n == 1 || n == len;
            if !fits(self.scales.len()) || !fits(zeros.len()) {
                return None;
            }
            let pick = |values: &[f32], c: usize| values[if values.len() == 1 { 0 } else { c }];
            let zeros: Vec<f32> = zeros.iter().map(|&z| z as f32).collect();
            // The index of `axis` and the place within it, counted rather than divided out.
            let (mut c, mut within) = (0, 0);
            let (mut scale, mut zero) = (pick(&self.scales, 0), pick(&zeros, 0));
            q.blocks(|first, block| {
                let out = &mut raw[bytes_of(first, block.len())];
                // Runs of one index of `axis`, each a loop with one scale and zero point.
                let mut at = 0;
                while at < block.len() {
                    let run = (inner - within).min(block.len() - at);
                    for (bytes, &v) in out[4 * at..4 * (at + run)]
                        .chunks_exact_mut(4)
                        .zip(&block[at..at + run])
                    {
                        bytes.copy_from_slice(&((v as f32 - zero) * scale).to_le_bytes());
                    }
                    at += run;
                    within += run;
                    if within == inner {
                        within = 0;
                        c = if c + 1 == len { 0 } else { c + 1 };
                        (scale, zero) = (pick(&self.scales, c), pick(&zeros, c));
                    }
                }
            });
        }
        Some(pb::TensorProto {
            name: name.to_owned(),
            dims: q.shape().iter().map(|&d| d as i64).collect(),
            data_type: pb::tensor_proto::DataType::Float as i32,
            raw_data: raw,
            ..Default::default()
        })
    }
}

/// Replaces every `DequantizeLinear` whose inputs are all initializers by an initializer holding
/// its f32 output, and drops the initializers nothing reads any more. Each node's constants are
/// read once, and also offered to `weights` when given (the integer convolutions' weights, which
/// tract's folding would lose). Returns how many nodes it folded.
pub(crate) fn fold_constant_dequantize(
    onnx: &tract_onnx::Onnx,
    proto: &mut pb::ModelProto,
    mut weights: Option<&mut QuantizedWeights>,
) -> usize {
    let Some(graph) = proto.graph.as_mut() else {
        return 0;
    };
    let outputs: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut folded: Vec<(usize, pb::TensorProto)> = Vec::new();
    {
        let initializers: HashMap<&str, &pb::TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        for (i, node) in graph.node.iter().enumerate() {
            if node.op_type != "DequantizeLinear" {
                continue;
            }
            let Some(constant) = Constant::read(onnx, node, &initializers) else {
                continue;
            };
            if let Some(weights) = weights.as_deref_mut() {
                weights.offer(&constant);
            }
            let output = &node.output[0];
            if node.domain.is_empty() && !outputs.contains(output) {
                if let Some(tensor) = constant.folded(output) {
                    folded.push((i, tensor));
                }
            }
        }
    }
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

    /// `proto` with its integer tensors in `int32_data`, where ONNX also lets them be.
    fn in_fields(mut proto: pb::ModelProto) -> pb::ModelProto {
        for t in &mut proto.graph.as_mut().unwrap().initializer {
            let raw = std::mem::take(&mut t.raw_data);
            t.int32_data = match DataType::try_from(t.data_type).unwrap() {
                DataType::Int8 => raw.iter().map(|&b| i32::from(b as i8)).collect(),
                DataType::Uint8 => raw.iter().map(|&b| i32::from(b)).collect(),
                DataType::Int32 => raw
                    .chunks(4)
                    .map(|w| i32::from_le_bytes(w.try_into().unwrap()))
                    .collect(),
                _ => {
                    t.raw_data = raw;
                    continue;
                }
            };
        }
        proto
    }

    #[test]
    fn folded_dequantizations_hold_what_tract_computes_bit_for_bit() {
        let onnx = tract_onnx::onnx();
        for (original, stored) in [(model(), "raw_data"), (in_fields(model()), "int32_data")] {
            let mut folded = original.clone();
            assert_eq!(
                fold_constant_dequantize(&onnx, &mut folded, None),
                CASES.len(),
                "{stored}"
            );
            let graph = folded.graph.as_ref().unwrap();
            // Only the dequantization of a computed tensor is left.
            let left: Vec<&str> = graph
                .node
                .iter()
                .filter(|n| n.op_type == "DequantizeLinear")
                .map(|n| n.name.as_str())
                .collect();
            assert_eq!(left, ["dqx"]);
            // The quantized tensors and their zero points are gone, except what `dqx` still
            // reads; an initializer no folded node read stays.
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
                assert_eq!(w, g, "output {i} differs, {stored}");
            }
            // And with x = 0, each output is its dequantized tensor itself: not all zero.
            let zero = run(&onnx, &folded, &[0.0; 24]);
            assert!(zero[1..].iter().all(|o| o.iter().any(|&b| b != 0)));
        }
    }

    #[test]
    fn the_convolution_weights_are_kept_on_the_way() {
        let onnx = tract_onnx::onnx();
        for (mut proto, stored) in [(model(), "raw_data"), (in_fields(model()), "int32_data")] {
            let mut weights = QuantizedWeights::default();
            fold_constant_dequantize(&onnx, &mut proto, Some(&mut weights));
            // s8 with no zero point, one scale (dq3) or one per output channel on axis 0 (dq4);
            // not a non-zero zero point (dq0), scales on another axis (dq6), nor u8 or i32.
            let q: Vec<i8> = (0..24).map(|i| (i as i8).wrapping_mul(11)).collect();
            let kept: Vec<&Vec<f32>> = weights.by_hash.values().flatten().map(|(_, s)| s).collect();
            assert_eq!(kept.len(), 2, "{stored}: {kept:?}");
            for scales in [vec![0.0123f32; 2], vec![0.3, -1.7e-3]] {
                let (found, found_scales) = weights
                    .find(&super::super::weights::fold(&q, &scales))
                    .unwrap_or_else(|| panic!("{stored}: {scales:?} not kept"));
                assert_eq!((found, found_scales), (&q[..], &scales[..]), "{stored}");
            }
        }
    }

    #[test]
    fn only_convolution_weights_are_kept() {
        let q = |dims: &[i64]| {
            let n: i64 = dims.iter().product();
            tensor("q", DataType::Int8, dims, (0..n).map(|i| i as u8).collect())
        };
        let kept = |t: &pb::TensorProto, scales: &[f32], axis: i64| {
            let mut weights = QuantizedWeights::default();
            weights.offer(&Constant {
                q: Integers::read(t).unwrap(),
                scales: scales.to_vec(),
                zeros: None,
                axis,
                blocked: false,
            });
            weights.by_hash.len()
        };
        let (square, line) = (q(&[2, 2, 3]), q(&[6]));
        assert_eq!(kept(&square, &[0.5, 0.25], 0), 1);
        assert_eq!(kept(&square, &[0.5], 1), 1);
        // As many scales as output channels, but along another axis.
        assert_eq!(kept(&square, &[0.5, 0.25], 1), 0);
        // Not a kernel.
        assert_eq!(kept(&line, &[0.5], 0), 0);
    }

    /// `model()` with `change` applied: how many nodes fold, and whether `dq{stays}` is left.
    fn folds_without(stays: usize, change: impl FnOnce(&mut pb::GraphProto)) {
        let onnx = tract_onnx::onnx();
        let mut proto = model();
        let graph = proto.graph.as_mut().unwrap();
        change(graph);
        assert_eq!(
            fold_constant_dequantize(&onnx, &mut proto, None),
            CASES.len() - 1
        );
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
    fn a_dequantization_whose_difference_overflows_stays() {
        // i32::MIN − 1 has no i32 value, whatever tract would make of it.
        folds_without(2, |graph| {
            let zero = graph.initializer.iter_mut().find(|t| t.name == "z32");
            zero.unwrap().raw_data = 1i32.to_le_bytes().to_vec();
        });
    }

    #[test]
    fn a_dequantization_with_a_computed_scale_stays() {
        folds_without(4, |graph| node_named(graph, "dq4").input[1] = "x".into());
    }
}
