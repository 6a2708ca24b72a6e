"""The SPEC's digest-signing vectors (SPEC 2.5), shared by the key and the layout tests."""

SIGNED = {  # component -> signed name for n=1, n=4, n=8, n=11
    "a": ("a_b", "a_btax", "a_btaxlooa", "a_btaxlooa6g3"),
    "hello": ("hello_l", "hello_lvau", "hello_lvauakv4", "hello_lvauakv4jmv"),
    "Hello": ("Hello_r", "Hello_rmnj", "Hello_rmnjsu6e", "Hello_rmnjsu6emej"),
    "HELLO": ("HELLO_5", "HELLO_5nq6", "HELLO_5nq65lmq", "HELLO_5nq65lmq4o4"),
    "k": ("k_r", "k_rtsl", "k_rtslc2zc", "k_rtslc2zcwwe"),
    "abc": ("abc_s", "abc_saav", "abc_saavbgb4", "abc_saavbgb42jh"),
    "x.y": ("x.y_w", "x.y_wlkm", "x.y_wlkm2kcy", "x.y_wlkm2kcy747"),
    "(x)=~-": ("(x)=~-_c", "(x)=~-_cibw", "(x)=~-_cibweov6", "(x)=~-_cibweov64na"),
    "0": ("0_z", "0_z7gs", "0_z7gsbbev", "0_z7gsbbev2vs"),
}
OTHER_SEEN = [
    ("B", 4, "B_tvpn"), ("c.d", 4, "c.d_4cj6"), ("y", 4, "y_ifjj"), ("x", 4, "x_txko"),
    ("p", 4, "p_qody"), ("q", 4, "q_o2kp"), ("k1", 4, "k1_wy33"), ("k2", 4, "k2_mfra"),
    ("k3", 4, "k3_66vu"), ("b", 8, "b_slvv77xg"), ("x", 8, "x_txkoiyjg"),
]
