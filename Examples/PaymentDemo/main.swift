// Placeholder replaced by the PaymentDemo example.
print("payment-demo")
