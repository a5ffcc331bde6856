"""Networks: the conditional 1D U-Net action head, embeddings and observation encoders."""
