// The scene-change gate's low-resolution luma signature (`sampling::Signature::compute`), exactly:
// a 32 x 18 grid of cells, each the integer mean of a 4 x 4 lattice of luma samples. Packed RGB luma
// is (77 R + 150 G + 29 B) >> 8. One invocation per cell; all arithmetic is integer.

struct SignatureParams {
    width: u32,
    height: u32,
    base: u32,
    row_stride: u32,
    pixel_stride: u32,
    // 0: luma byte (YUV formats), 1: R, G, B bytes, 2: B, G, R bytes.
    kind: u32,
    reserved0: u32,
    reserved1: u32,
}

const CELLS_X: u32 = 32u;
const CELLS_Y: u32 = 18u;
const LATTICE: u32 = 4u;

@group(0) @binding(0) var<uniform> p: SignatureParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> cells: array<u32>;

fn byte_at(addr: u32) -> u32 {
    return (src[addr >> 2u] >> ((addr & 3u) * 8u)) & 0xffu;
}

fn luma(x: u32, y: u32) -> u32 {
    let a = p.base + y * p.row_stride + x * p.pixel_stride;
    switch p.kind {
        case 1u: { return (byte_at(a) * 77u + byte_at(a + 1u) * 150u + byte_at(a + 2u) * 29u) >> 8u; }
        case 2u: { return (byte_at(a + 2u) * 77u + byte_at(a + 1u) * 150u + byte_at(a) * 29u) >> 8u; }
        default: { return byte_at(a); }
    }
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if id.x >= CELLS_X || id.y >= CELLS_Y {
        return;
    }
    let gw = CELLS_X * LATTICE;
    let gh = CELLS_Y * LATTICE;
    var sum = 0u;
    for (var j = 0u; j < LATTICE; j++) {
        let gy = id.y * LATTICE + j;
        let y = (gy * 2u + 1u) * p.height / (gh * 2u);
        for (var i = 0u; i < LATTICE; i++) {
            let gx = id.x * LATTICE + i;
            let x = (gx * 2u + 1u) * p.width / (gw * 2u);
            sum += luma(x, y);
        }
    }
    cells[id.y * CELLS_X + id.x] = sum / (LATTICE * LATTICE);
}
